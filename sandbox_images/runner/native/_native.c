/* sandbox_runner._native: the child's set-up and clean-up as system calls, with no Python
 * between the fork and the request.
 *
 * A forked child's every line of Python writes to pages it shares with its template (reference
 * counts, allocator pools, frames), and each first write costs a page fault and a 4 KiB copy:
 * the set-up below cost a child about 100 faults and 0.6 ms of CPU in Python. The steps and
 * their order are those SECURITY.md describes; each failure raises OSError, and the child
 * exits on it before it reads a request.
 *
 * Built against the stable ABI of Debian's Python by ../Dockerfile.
 */
#define Py_LIMITED_API 0x030B0000
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SMALL_READ 4096

static PyObject *os_error(void) { return PyErr_SetFromErrno(PyExc_OSError); }

/* A file's first 4 KiB, NUL-terminated, into buf; its length, or -1 if it cannot be read. */
static ssize_t read_small(const char *path, char *buf) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, SMALL_READ - 1);
    close(fd);
    if (n >= 0)
        buf[n] = 0;
    return n;
}

/* enter(stdin_fd, stdout_fd, stderr_fd, uid, gid, nice, max_open_files): the child leaves the
 * runner's session, becomes the OOM killer's first choice (before the uid switch, which makes
 * that file unwritable), takes the pipes as fds 0-2, drops to the sandbox uid with no
 * supplementary groups, no core files and max_open_files fds, and goes below the runner in
 * CPU share. No RLIMIT_NPROC: it counts the uid's processes across every container on the host,
 * so one fork bomb would starve its neighbours; the container's pids limit bounds each alone. */
static PyObject *enter(PyObject *self, PyObject *args) {
    int fds[3], uid, gid, increment, max_open_files;
    if (!PyArg_ParseTuple(args, "iiiiiii", &fds[0], &fds[1], &fds[2], &uid, &gid, &increment,
                          &max_open_files))
        return NULL;
    if (setsid() < 0)
        return os_error();
    int oom = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
    if (oom < 0)
        return os_error();
    if (write(oom, "1000", 4) != 4) {
        close(oom);
        return os_error();
    }
    close(oom);
    for (int i = 0; i < 3; i++)
        if (dup2(fds[i], i) < 0)
            return os_error();
    for (int i = 0; i < 3; i++)
        if (fds[i] > 2)
            close(fds[i]);
    if (setgroups(0, NULL) < 0 || setgid((gid_t)gid) < 0 || setuid((uid_t)uid) < 0)
        return os_error();
    struct rlimit no_core = {0, 0};
    struct rlimit open_files = {(rlim_t)max_open_files, (rlim_t)max_open_files};
    if (setrlimit(RLIMIT_CORE, &no_core) < 0 || setrlimit(RLIMIT_NOFILE, &open_files) < 0)
        return os_error();
    errno = 0;
    if (nice(increment) == -1 && errno)
        return os_error();
    Py_RETURN_NONE;
}

/* The tasks (processes and threads) in the container's cgroup, from the first of paths that
 * can be read; -1 where none counts them. */
static long count_tasks(PyObject *paths) {
    char buf[SMALL_READ];
    Py_ssize_t n = PyTuple_Size(paths);
    for (Py_ssize_t i = 0; i < n; i++) {
        const char *path = PyUnicode_AsUTF8AndSize(PyTuple_GetItem(paths, i), NULL);
        if (path == NULL)
            return -2;
        if (read_small(path, buf) < 0)
            continue;
        char *end;
        long count = strtol(buf, &end, 10);
        return end != buf && (*end == '\n' || *end == 0) && count >= 0 ? count : -1;
    }
    return -1;
}

/* container_tasks(paths): the cgroup's count of tasks, or None where it does not count. */
static PyObject *container_tasks(PyObject *self, PyObject *args) {
    PyObject *paths;
    if (!PyArg_ParseTuple(args, "O!", &PyTuple_Type, &paths))
        return NULL;
    long count = count_tasks(paths);
    if (count == -2)
        return NULL;
    if (count < 0)
        Py_RETURN_NONE;
    return PyLong_FromLong(count);
}

/* Whether a live process of uid other than this one exists (zombies wait for init to reap
 * them). */
static int uid_lives(uid_t uid) {
    DIR *proc = opendir("/proc");
    if (proc == NULL)
        return 1;
    char path[64], buf[SMALL_READ];
    pid_t me = getpid();
    int found = 0;
    struct dirent *entry;
    while (!found && (entry = readdir(proc)) != NULL) {
        char *end;
        long pid = strtol(entry->d_name, &end, 10);
        if (*end != 0 || end == entry->d_name || pid == me)
            continue;
        snprintf(path, sizeof path, "/proc/%ld/status", pid);
        if (read_small(path, buf) < 0)
            continue;
        const char *state = strstr(buf, "\nState:\t");
        const char *uids = strstr(buf, "\nUid:\t");
        if (state == NULL || uids == NULL)
            continue;
        found = strtoul(uids + 6, NULL, 10) == uid && state[8] != 'Z';
    }
    closedir(proc);
    return found;
}

/* Kill every process of this uid but this one, until /proc shows none (kill(-1)'s return value
 * cannot say, since it counts processes it may not signal too), at most rounds times. */
static int kill_uid(int rounds) {
    uid_t uid = getuid();
    struct timespec pause = {0, 2000000};
    for (int i = 0; i < rounds; i++) {
        if (kill(-1, SIGKILL) < 0 && errno == ESRCH)
            return 1;
        if (!uid_lives(uid))
            return 1;
        nanosleep(&pause, NULL);
    }
    return 0;
}

/* kill_everything(rounds): whether every other process of the calling uid is gone. */
static PyObject *kill_everything(PyObject *self, PyObject *args) {
    int rounds;
    if (!PyArg_ParseTuple(args, "i", &rounds))
        return NULL;
    return PyBool_FromLong(kill_uid(rounds));
}

/* Delete what is under the directory dir (whose fd this takes) without following a symlink;
 * directories locked by the code are opened up first. Whether the directory is empty then:
 * errors leave what they leave. */
static int remove_tree(int dir) {
    DIR *listing = fdopendir(dir);
    if (listing == NULL) {
        close(dir);
        return 0;
    }
    struct dirent *entry;
    while ((entry = readdir(listing)) != NULL) {
        const char *name = entry->d_name;
        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
            continue;
        int is_dir = entry->d_type == DT_DIR;
        if (entry->d_type == DT_UNKNOWN) {
            struct stat st;
            is_dir = fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
        }
        if (!is_dir) {
            unlinkat(dir, name, 0);
            continue;
        }
        /* chmod by name, since a directory the code locked cannot be opened; d_type does not
         * follow a symlink, and a symlink swapped in meanwhile would lead only to files of the
         * sandbox uid (which alone this process may chmod). */
        fchmodat(dir, name, 0700, 0);
        int sub = openat(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub >= 0)
            remove_tree(sub);
        unlinkat(dir, name, AT_REMOVEDIR);
    }
    rewinddir(listing);
    int empty = 1;
    while (empty && (entry = readdir(listing)) != NULL)
        empty = strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0;
    closedir(listing);
    return empty;
}

/* scrub(tasks, pids_paths, scratch_dirs, rounds): in the next child, as the sandbox uid,
 * whether nothing of the previous execution is left but SysV IPC objects (see scrub.py). The
 * sweep for processes is skipped when the cgroup counts exactly tasks (> 0): the runner's side
 * and this child. */
static PyObject *scrub(PyObject *self, PyObject *args) {
    int tasks, rounds;
    PyObject *pids_paths, *dirs;
    if (!PyArg_ParseTuple(args, "iO!O!i", &tasks, &PyTuple_Type, &pids_paths, &PyTuple_Type,
                          &dirs, &rounds))
        return NULL;
    int clean = 0;
    if (tasks > 0) {
        long count = count_tasks(pids_paths);
        if (count == -2)
            return NULL;
        clean = count == tasks;
    }
    if (!clean)
        clean = kill_uid(rounds);
    Py_ssize_t n = PyTuple_Size(dirs);
    for (Py_ssize_t i = 0; i < n; i++) {
        const char *path = PyUnicode_AsUTF8AndSize(PyTuple_GetItem(dirs, i), NULL);
        if (path == NULL)
            return NULL;
        int dir = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dir >= 0)  /* one that cannot be opened has nothing to clean */
            clean = remove_tree(dir) && clean;
    }
    return PyBool_FromLong(clean);
}

/* sysv_ipc_exists(): whether a SysV shared memory segment, message queue or semaphore set
 * exists (each /proc/sysvipc file has a header line). */
static PyObject *sysv_ipc_exists(PyObject *self, PyObject *unused) {
    static const char *const tables[] = {"/proc/sysvipc/shm", "/proc/sysvipc/msg",
                                         "/proc/sysvipc/sem"};
    char buf[SMALL_READ];
    for (size_t i = 0; i < sizeof tables / sizeof *tables; i++) {
        if (read_small(tables[i], buf) < 0)
            continue;
        const char *newline = strchr(buf, '\n');
        if (newline != NULL && strchr(newline + 1, '\n') != NULL)
            Py_RETURN_TRUE;
    }
    Py_RETURN_FALSE;
}

static PyMethodDef methods[] = {
    {"enter", enter, METH_VARARGS, "The child's set-up as root, ending as the sandbox uid."},
    {"container_tasks", container_tasks, METH_VARARGS, "The cgroup's count of tasks, or None."},
    {"kill_everything", kill_everything, METH_VARARGS, "Kill every other process of this uid."},
    {"scrub", scrub, METH_VARARGS, "Clean up after the previous execution."},
    {"sysv_ipc_exists", sysv_ipc_exists, METH_NOARGS, "Whether a SysV IPC object exists."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "sandbox_runner._native", NULL, -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__native(void) { return PyModule_Create(&module); }
