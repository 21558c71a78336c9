"""Walls a sandbox bridge network off from this host, in IPv4 and IPv6.

Docker filters traffic between containers (inter-container communication off) and between
networks, but a container's packets to any of the host's own addresses (its gateway, docker0,
eth0) go through the host's INPUT chain and reach whatever listens on 0.0.0.0 or [::]: a Redis,
the API, an engine on TCP. One REJECT rule per address family for the bridge interface closes
that (replies to connections the host itself opens still pass); REJECT rather than DROP so a
connection fails at once instead of hanging until a timeout.
"""

import subprocess

TOOLS = ("iptables", "ip6tables")
TOOL_TIMEOUT_S = 30


class FirewallError(Exception):
    """The host's firewall could not be changed: network sandboxes must not start."""


def wall_rule(bridge: str) -> list[str]:
    """Whatever a sandbox starts towards this host; replies to the host's own connections pass."""
    return ["INPUT", "-i", bridge, "-m", "conntrack", "!", "--ctstate", "ESTABLISHED,RELATED",
            "-m", "comment", "--comment", f"sandbox wall {bridge}", "-j", "REJECT"]


def _call(tool: str, action: str, bridge: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run([tool, "-w", "5", action, *wall_rule(bridge)], capture_output=True,
                              text=True, timeout=TOOL_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise FirewallError(f"{tool}: {exc}") from exc


def wall_off(bridge: str) -> None:
    """Reject everything arriving on `bridge` for this host (the rule may precede the bridge)."""
    for tool in TOOLS:
        if _call(tool, "-C", bridge).returncode == 0:
            continue
        done = _call(tool, "-I", bridge)
        if done.returncode != 0:
            raise FirewallError(f"{tool}: {done.stderr.strip() or done.returncode}")


def take_down(bridge: str) -> None:
    """Remove the wall of `bridge` (every copy of it), once its network is gone."""
    for tool in TOOLS:
        while _call(tool, "-C", bridge).returncode == 0:
            if _call(tool, "-D", bridge).returncode != 0:
                break


def is_walled(bridge: str) -> bool:
    return all(_call(tool, "-C", bridge).returncode == 0 for tool in TOOLS)
