"""Loaded by every Python process of the cloud rehearsal's tasks (PYTHONPATH): refuse, and record, any connection
to an address outside 127.0.0.0/8. The rehearsal fails when anything was recorded."""

import ipaddress
import os
import socket

_LOG = os.environ.get("REHEARSAL_NETWORK_LOG")
_connect, _connect_ex = socket.socket.connect, socket.socket.connect_ex


def _loopback(address) -> bool:
    host = address[0] if isinstance(address, tuple) else None
    if host is None:
        return True  # AF_UNIX and friends
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return host == "localhost"


def _guard(sock, address) -> None:
    if sock.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(address):
        if _LOG:
            with open(_LOG, "a") as log:
                log.write(f"pid {os.getpid()}: connect to {address!r} refused\n")
        raise PermissionError(f"cloud rehearsal: connection to {address!r} refused (only 127.0.0.0/8 is allowed)")


def connect(self, address):
    _guard(self, address)
    return _connect(self, address)


def connect_ex(self, address):
    _guard(self, address)
    return _connect_ex(self, address)


socket.socket.connect, socket.socket.connect_ex = connect, connect_ex
