/* sandbox_runner._native: the template's loop, and the child's set-up and clean-up, as system
 * calls with no Python between them.
 *
 * A forked process's every line of Python writes to pages it shares with the process it was
 * forked from (reference counts, allocator pools, frames), and each first write costs a page
 * fault and a 4 KiB copy: in the child, between its fork and its request; in the template, after
 * each fork, which leaves all of its memory shared with the new child. The steps and their order
 * are those SECURITY.md describes; each failure of the child's raises OSError, and the child
 * exits on it before it reads a request.
 *
 * Built against the stable ABI of Debian's Python by ../Dockerfile.
 */
#define _GNU_SOURCE /* struct shm_info */
#define Py_LIMITED_API 0x030B0000
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/msg.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Buffers are small and on the stack: each page a child touches first costs it a fault. */
#define COUNT_READ 64   /* pids.current */
#define STATUS_READ 1024 /* /proc/<pid>/status, as far as its Uid line */
#define LISTING_READ 1024

static PyObject *os_error(void) { return PyErr_SetFromErrno(PyExc_OSError); }

/* A file's first size - 1 bytes, NUL-terminated, into buf; their count, or -1 if it cannot be
 * read. */
static ssize_t read_small(const char *path, char *buf, size_t size) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, size - 1);
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

/* limit(max_file_bytes, timeout_s): the cap on the size of any file the execution writes, and
 * a CPU-time backstop behind the wall-clock timeout the runner enforces: timeout_s on top of
 * what this process has used already (cleaning up after the previous execution), with a second
 * between SIGXCPU (a timeout) and the SIGKILL of the hard limit. */
static PyObject *limit(PyObject *self, PyObject *args) {
    long long max_file_bytes;
    double timeout_s;
    if (!PyArg_ParseTuple(args, "Ld", &max_file_bytes, &timeout_s))
        return NULL;
    struct rlimit files = {(rlim_t)max_file_bytes, (rlim_t)max_file_bytes};
    if (setrlimit(RLIMIT_FSIZE, &files) < 0)
        return os_error();
    struct rusage usage;
    if (getrusage(RUSAGE_SELF, &usage) < 0)
        return os_error();
    double used = (double)usage.ru_utime.tv_sec + usage.ru_utime.tv_usec / 1e6 +
                  (double)usage.ru_stime.tv_sec + usage.ru_stime.tv_usec / 1e6;
    rlim_t cpu = (rlim_t)(used + timeout_s) + 2;
    struct rlimit backstop = {cpu, cpu + 1};
    if (setrlimit(RLIMIT_CPU, &backstop) < 0)
        return os_error();
    Py_RETURN_NONE;
}

/* The tasks (processes and threads) in the container's cgroup, from the first of paths that
 * can be read; -1 where none counts them. */
static long count_tasks(PyObject *paths) {
    char buf[COUNT_READ];
    Py_ssize_t n = PyTuple_Size(paths);
    for (Py_ssize_t i = 0; i < n; i++) {
        const char *path = PyUnicode_AsUTF8AndSize(PyTuple_GetItem(paths, i), NULL);
        if (path == NULL)
            return -2;
        if (read_small(path, buf, sizeof buf) < 0)
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

/* A live process of uid other than this one (zombies wait for init to reap them): its pid, 0 if
 * there is none, -1 if /proc cannot be read. */
static pid_t live_of_uid(uid_t uid) {
    DIR *proc = opendir("/proc");
    if (proc == NULL)
        return -1;
    char path[64], buf[STATUS_READ];
    pid_t me = getpid(), found = 0;
    struct dirent *entry;
    while (!found && (entry = readdir(proc)) != NULL) {
        char *end;
        long pid = strtol(entry->d_name, &end, 10);
        if (*end != 0 || end == entry->d_name || pid == me)
            continue;
        snprintf(path, sizeof path, "/proc/%ld/status", pid);
        if (read_small(path, buf, sizeof buf) < 0)
            continue;
        const char *state = strstr(buf, "\nState:\t");
        const char *uids = strstr(buf, "\nUid:\t");
        if (state == NULL || uids == NULL)
            continue;
        if (strtoul(uids + 6, NULL, 10) == uid && state[8] != 'Z')
            found = (pid_t)pid;
    }
    closedir(proc);
    return found;
}

/* Until pid has exited (its pidfd polls readable then), at most KILL_WAIT_MS. What is usually
 * left when a child cleans up is a process the kernel is tearing down (the previous execution's
 * memory holder, see hold_memory), gone within milliseconds. */
#define KILL_WAIT_MS 2
static void await_end(pid_t pid) {
    int exit_fd = pid > 0 ? (int)syscall(SYS_pidfd_open, pid, 0) : -1;
    if (exit_fd < 0) { /* no pidfds (gVisor), or no pid to wait for */
        struct timespec pause = {0, KILL_WAIT_MS * 1000000L};
        nanosleep(&pause, NULL);
        return;
    }
    struct pollfd ended = {.fd = exit_fd, .events = POLLIN};
    poll(&ended, 1, KILL_WAIT_MS);
    close(exit_fd);
}

/* Kill every process of this uid but this one, until /proc shows none (kill(-1)'s return value
 * cannot say, since it counts processes it may not signal too), at most rounds times. */
static int kill_uid(int rounds) {
    uid_t uid = getuid();
    for (int i = 0; i < rounds; i++) {
        if (kill(-1, SIGKILL) < 0 && errno == ESRCH)
            return 1;
        pid_t live = live_of_uid(uid);
        if (live == 0)
            return 1;
        await_end(live);
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

struct linux_dirent64 {
    ino64_t d_ino;
    off64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

/* Delete what is under the directory dir (whose fd this takes) without following a symlink;
 * directories locked by the code are opened up first. Whether all of it went (nothing of the
 * sandbox uid lives on to add more: see scrub). getdents64 itself, not readdir: glibc's
 * directory stream is a 32 KiB buffer on the heap. */
static int remove_tree(int dir) {
    char listing[LISTING_READ] __attribute__((aligned(8)));
    int all_gone = 1;
    long size;
    while ((size = syscall(SYS_getdents64, dir, listing, sizeof listing)) > 0) {
        for (long at = 0; at < size;) {
            struct linux_dirent64 *entry = (struct linux_dirent64 *)(listing + at);
            at += entry->d_reclen;
            const char *name = entry->d_name;
            if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
                continue;
            int is_dir = entry->d_type == DT_DIR;
            if (entry->d_type == DT_UNKNOWN) {
                struct stat st;
                is_dir = fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
            }
            if (is_dir) {
                /* chmod by name, since a directory the code locked cannot be opened; d_type
                 * does not follow a symlink, and a symlink swapped in meanwhile would lead only
                 * to files of the sandbox uid (which alone this process may chmod). */
                fchmodat(dir, name, 0700, 0);
                int sub = openat(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (sub >= 0)
                    remove_tree(sub);
            }
            if (unlinkat(dir, name, is_dir ? AT_REMOVEDIR : 0) < 0)
                all_gone = 0;
        }
    }
    close(dir);
    return all_gone && size == 0;
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
        if (dir >= 0) /* one that cannot be opened has nothing to clean */
            clean = remove_tree(dir) && clean;
    }
    return PyBool_FromLong(clean);
}

union semun { /* as semctl(2) says the caller defines it */
    int val;
    struct semid_ds *buf;
    unsigned short *array;
    struct seminfo *__buf;
};

/* sysv_ipc_exists(): whether a SysV shared memory segment, message queue or semaphore set
 * exists in the container's IPC namespace, from the kernel's own counts (three calls, where
 * reading /proc/sysvipc took three opens); True where it cannot tell. */
static PyObject *sysv_ipc_exists(PyObject *self, PyObject *unused) {
    struct shm_info shm;
    struct msginfo msg;
    struct seminfo sem;
    union semun sem_arg = {.__buf = &sem};
    if (shmctl(0, SHM_INFO, (struct shmid_ds *)&shm) < 0 ||
        msgctl(0, MSG_INFO, (struct msqid_ds *)&msg) < 0 || semctl(0, 0, SEM_INFO, sem_arg) < 0)
        Py_RETURN_TRUE;
    return PyBool_FromLong(shm.used_ids > 0 || msg.msgpool > 0 || sem.semusz > 0);
}

/* --- the template's loop (template.py has the protocol) --------------------------------------- */

#define MAX_CHILDREN 16 /* the runner keeps one or two at a time */
#define MAX_CHILD_FDS 8
#define MESSAGE_SIZE 64

struct child {
    pid_t pid;
    int exit_fd; /* its pidfd, or -1: the SIGCHLD wake-up pipe (no pidfds, as in gVisor) */
    int reported;
};

static struct child children[MAX_CHILDREN];
static int child_count;
static int wake[2] = {-1, -1};

static void on_sigchld(int sig) {
    int saved = errno;
    if (write(wake[1], "", 1) < 0) { /* full: a wake-up is pending anyway */
    }
    errno = saved;
}

/* The runner is gone, or the template cannot go on: so neither can any child it forked. */
static void end_template(void) {
    for (int i = 0; i < child_count; i++)
        kill(-children[i].pid, SIGKILL);
    _exit(0);
}

static void send_message(int sock, const char *message) {
    while (send(sock, message, strlen(message), MSG_NOSIGNAL) < 0)
        if (errno != EINTR)
            end_template();
}

static void watch_by_signal(void) {
    if (wake[0] >= 0)
        return;
    if (pipe2(wake, O_CLOEXEC | O_NONBLOCK) < 0)
        end_template();
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_sigchld;
    action.sa_flags = SA_RESTART | SA_NOCLDSTOP;
    sigemptyset(&action.sa_mask);
    if (sigaction(SIGCHLD, &action, NULL) < 0)
        end_template();
}

/* "exit <pid> <wait status>" for each unreported child that has exited (left unreaped). */
static void report_exits(int sock, int exit_fd) {
    for (int i = 0; i < child_count; i++) {
        struct child *c = &children[i];
        if (c->reported || c->exit_fd != exit_fd)
            continue;
        siginfo_t info;
        memset(&info, 0, sizeof info);
        if (waitid(P_PID, (id_t)c->pid, &info, WEXITED | WNOHANG | WNOWAIT) < 0 || info.si_pid == 0)
            continue;
        int status = info.si_code == CLD_EXITED
                         ? (info.si_status & 0xFF) << 8
                         : info.si_status | (info.si_code == CLD_DUMPED ? 0x80 : 0);
        char message[MESSAGE_SIZE];
        snprintf(message, sizeof message, "exit %d %d", (int)c->pid, status);
        c->reported = 1;
        send_message(sock, message);
    }
}

static void reap(pid_t pid) {
    for (int i = 0; i < child_count; i++) {
        if (children[i].pid != pid)
            continue;
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
        }
        if (children[i].exit_fd >= 0)
            close(children[i].exit_fd);
        children[i] = children[--child_count];
        return;
    }
}

/* serve_template(sock, before_fork): the template's loop, on the runner's SOCK_SEQPACKET socket
 * (whose fd it takes). In the template it never returns: it ends with the runner. In each child
 * it forks, it returns the child's (fds, tasks, pages): the fds the runner sent with
 * "fork <tasks> <pages>" (pages: which of the template's page lists the child writes ahead, -1
 * for none; see pages.py). before_fork: None, or what to call before each fork. */
static PyObject *serve_template(PyObject *self, PyObject *args) {
    int sock;
    PyObject *before_fork;
    if (!PyArg_ParseTuple(args, "iO", &sock, &before_fork))
        return NULL;
    for (;;) {
        struct pollfd polled[MAX_CHILDREN + 2];
        int count = 0;
        polled[count++] = (struct pollfd){.fd = sock, .events = POLLIN};
        if (wake[0] >= 0)
            polled[count++] = (struct pollfd){.fd = wake[0], .events = POLLIN};
        for (int i = 0; i < child_count; i++)
            if (!children[i].reported && children[i].exit_fd >= 0)
                polled[count++] = (struct pollfd){.fd = children[i].exit_fd, .events = POLLIN};
        if (poll(polled, (nfds_t)count, -1) < 0) {
            if (errno == EINTR)
                continue;
            end_template();
        }
        for (int i = 1; i < count; i++) {
            if (!polled[i].revents)
                continue;
            if (polled[i].fd == wake[0]) {
                char drained[64];
                while (read(wake[0], drained, sizeof drained) > 0) {
                }
                report_exits(sock, -1);
            } else {
                report_exits(sock, polled[i].fd);
            }
        }
        if (!polled[0].revents)
            continue;

        char message[MESSAGE_SIZE + 1];
        union {
            char buf[CMSG_SPACE(sizeof(int) * MAX_CHILD_FDS)];
            struct cmsghdr align;
        } control;
        struct iovec iov = {.iov_base = message, .iov_len = MESSAGE_SIZE};
        struct msghdr header;
        memset(&header, 0, sizeof header);
        header.msg_iov = &iov;
        header.msg_iovlen = 1;
        header.msg_control = control.buf;
        header.msg_controllen = sizeof control.buf;
        ssize_t size = recvmsg(sock, &header, MSG_CMSG_CLOEXEC);
        if (size < 0 && errno == EINTR)
            continue;
        if (size <= 0 || (header.msg_flags & (MSG_TRUNC | MSG_CTRUNC)))
            end_template(); /* the runner is gone, or speaks no protocol of ours */
        message[size] = 0;
        int fds[MAX_CHILD_FDS], fd_count = 0;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&header); c != NULL; c = CMSG_NXTHDR(&header, c)) {
            if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                continue;
            int n = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
            for (int i = 0; i < n && fd_count < MAX_CHILD_FDS; i++)
                memcpy(&fds[fd_count++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
        }

        if (strncmp(message, "reap ", 5) == 0) {
            reap((pid_t)strtol(message + 5, NULL, 10));
        } else if (strncmp(message, "fork", 4) == 0) {
            char *end;
            long tasks = strtol(message + 4, &end, 10);
            long pages = strtol(end, NULL, 10);
            if (child_count == MAX_CHILDREN)
                end_template();
            if (before_fork != Py_None) {
                PyObject *done = PyObject_CallNoArgs(before_fork);
                if (done == NULL)
                    end_template();
                Py_DECREF(done);
            }
            PyOS_BeforeFork();
            pid_t pid = fork();
            if (pid == 0) {
                PyOS_AfterFork_Child();
                close(sock);
                if (wake[0] >= 0) { /* the template's SIGCHLD wake-up is not the child's */
                    signal(SIGCHLD, SIG_DFL);
                    close(wake[0]);
                    close(wake[1]);
                }
                for (int i = 0; i < child_count; i++)
                    if (children[i].exit_fd >= 0)
                        close(children[i].exit_fd);
                PyObject *received = PyTuple_New(fd_count);
                if (received == NULL)
                    return NULL;
                for (int i = 0; i < fd_count; i++)
                    PyTuple_SetItem(received, i, PyLong_FromLong(fds[i]));
                return Py_BuildValue("(Nll)", received, tasks, pages);
            }
            PyOS_AfterFork_Parent();
            if (pid < 0)
                end_template();
            for (int i = 0; i < fd_count; i++)
                close(fds[i]);
            int exit_fd = (int)syscall(SYS_pidfd_open, pid, 0);
            if (exit_fd < 0)
                watch_by_signal();
            children[child_count++] = (struct child){.pid = pid, .exit_fd = exit_fd};
            char answer[MESSAGE_SIZE];
            snprintf(answer, sizeof answer, "pid %d", (int)pid);
            send_message(sock, answer);
            report_exits(sock, exit_fd); /* it may have ended before it could be watched */
        } else {
            for (int i = 0; i < fd_count; i++)
                close(fds[i]);
        }
    }
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

/* Pages written ahead between two looks at the request pipe: about a millisecond's work. */
#define TOUCH_BETWEEN_LOOKS 256

/* touch(runs, fd): in a child waiting for its request on fd, the pages of runs (native (start,
 * length) pairs, see pages.py) written ahead: MADV_POPULATE_WRITE takes each one's copy-on-write
 * fault now, not in the code's run. It stops once the request is there, so that only a child
 * left waiting spends the time (a busy container's next request comes at once). A run no longer
 * mapped is let be; nothing is done where the kernel has no such advice (before 5.14, gVisor). */
static PyObject *touch(PyObject *self, PyObject *args) {
    const char *runs;
    Py_ssize_t size;
    int fd;
    if (!PyArg_ParseTuple(args, "y#i", &runs, &size, &fd))
        return NULL;
    const Py_ssize_t pair = 2 * (Py_ssize_t)sizeof(uint64_t);
    const uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
    long since_look = TOUCH_BETWEEN_LOOKS;
    for (Py_ssize_t at = 0; at + pair <= size; at += pair) {
        if (since_look >= TOUCH_BETWEEN_LOOKS) {
            struct pollfd request = {.fd = fd, .events = POLLIN};
            if (poll(&request, 1, 0) != 0)
                break;
            since_look = 0;
        }
        uint64_t run[2];
        memcpy(run, runs + at, sizeof run);
        if (madvise((void *)(uintptr_t)run[0], (size_t)run[1], MADV_POPULATE_WRITE) < 0 &&
            errno == EINVAL && at == 0)
            break;
        since_look += (long)(run[1] / page);
    }
    Py_RETURN_NONE;
}

/* The holder's stack: a copy in each child (it is in the template's memory), used only by the
 * holder, which runs nothing but the calls below. */
static char holder_stack[16384] __attribute__((aligned(16)));

/* In the holder (see hold_memory), on its own stack in the child's memory: it holds none of the
 * child's fds (the output ends when the child's own copies close), runs no signal handler (the
 * child's are Python's, in the memory it shares), dies with the child, and until then sleeps.
 * Raw system calls that cannot fail here: glibc's wrappers would touch the child's thread state
 * (errno, cancellation), which the holder shares, since it has no thread-local storage of its
 * own. */
static int hold(void *child) {
    sigset_t all;
    memset(&all, 0xff, sizeof all);
    syscall(SYS_rt_sigprocmask, SIG_SETMASK, &all, NULL, _NSIG / 8);
    syscall(SYS_close_range, 0, ~0U, 0);
    syscall(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    if (syscall(SYS_getppid) == (long)(intptr_t)child)
        for (;;)
            syscall(SYS_ppoll, NULL, 0, NULL, NULL, 0);
    return 0;
}

/* hold_memory(): in a child, as the sandbox uid, once it has its request: a holder process that
 * shares the child's memory (CLONE_VM, not a thread) until the child has exited. A process's
 * exit status is out only once the kernel has torn down its memory, which takes milliseconds
 * for an interpreter that imported the scientific stack (every mapping's page tables undone);
 * with a holder, the child's exit only drops its share, and the teardown is the holder's, after
 * the status is out, beside the runner's answer. The holder has no exit signal, so that the
 * code's wait() for its own children never finds it, and is in the child's process group, which
 * the runner kills once the child has exited; the next child's clean-up waits for it as for any
 * process of the execution. Its pid; 0 where there is none (no close_range). */
static PyObject *hold_memory(PyObject *self, PyObject *unused) {
    if (syscall(SYS_close_range, ~0U, ~0U, 0) != 0) /* closes nothing: whether it exists */
        return PyLong_FromLong(0);
    pid_t pid = clone(hold, holder_stack + sizeof holder_stack, CLONE_VM,
                      (void *)(intptr_t)getpid());
    return PyLong_FromLong(pid < 0 ? 0 : pid);
}

static PyMethodDef methods[] = {
    {"enter", enter, METH_VARARGS, "The child's set-up as root, ending as the sandbox uid."},
    {"limit", limit, METH_VARARGS, "The execution's file size cap and CPU-time backstop."},
    {"container_tasks", container_tasks, METH_VARARGS, "The cgroup's count of tasks, or None."},
    {"kill_everything", kill_everything, METH_VARARGS, "Kill every other process of this uid."},
    {"scrub", scrub, METH_VARARGS, "Clean up after the previous execution."},
    {"sysv_ipc_exists", sysv_ipc_exists, METH_NOARGS, "Whether a SysV IPC object exists."},
    {"touch", touch, METH_VARARGS, "Write pages ahead (copy-on-write faults taken now)."},
    {"hold_memory", hold_memory, METH_NOARGS, "A holder of this process's memory till it exits."},
    {"serve_template", serve_template, METH_VARARGS, "The template's loop; returns in a child."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "sandbox_runner._native", NULL, -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__native(void) { return PyModule_Create(&module); }
