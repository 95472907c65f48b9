"""The network guard: put this folder first on a Python's PYTHONPATH and that Python refuses every
internet connection to an address other than the machine itself (loopback stays open: Jupyter kernels
talk to their client over it). Used by tools/notebook_runner.py (``offline=True``) and by the tests,
whose every notebook kernel (nbval's too) runs with it."""

import socket

_INTERNET = (socket.AF_INET, socket.AF_INET6)
_LOOPBACK_NAMES, _LOOPBACK_PREFIXES = ("", "localhost"), ("127.", "::1")
_connect, _connect_ex, _getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo


def _refuse_unless_loopback(host) -> None:
    if isinstance(host, str) and host not in _LOOPBACK_NAMES and not host.startswith(_LOOPBACK_PREFIXES):
        raise OSError(f"network access blocked by bnlab's network guard: {host!r}")


def _guarded_connect(self, address):
    if self.family in _INTERNET:
        _refuse_unless_loopback(address[0])
    return _connect(self, address)


def _guarded_connect_ex(self, address):
    if self.family in _INTERNET:
        _refuse_unless_loopback(address[0])
    return _connect_ex(self, address)


def _guarded_getaddrinfo(host, *args, **kwargs):
    _refuse_unless_loopback(host.decode() if isinstance(host, bytes) else host)
    return _getaddrinfo(host, *args, **kwargs)


socket.socket.connect = _guarded_connect
socket.socket.connect_ex = _guarded_connect_ex
socket.getaddrinfo = _guarded_getaddrinfo
