#!/usr/bin/env python3
# Stands in for systemd's qosd.socket + qosd.service in tests: binds and listens on the unix
# socket, never accepts on it, and runs the daemon with it as fd 3 (LISTEN_FDS=1, LISTEN_PID set
# to the daemon's own pid by exec). SIGUSR1 restarts the daemon (SIGTERM, wait, start again) while
# the socket stays open, so callers queue in its backlog; SIGTERM stops the daemon and exits.
# Usage: socket-holder.py SOCKET COMMAND [ARGS...]   (prints "daemon exited N" for each exit)
import os
import signal
import socket
import subprocess
import sys

path, cmd = sys.argv[1], sys.argv[2:]
if os.path.exists(path):
    os.unlink(path)
sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
sock.bind(path)
os.chmod(path, 0o660)
sock.listen(511)
fd = sock.fileno()
os.set_inheritable(fd, True)  # Python opens sockets close-on-exec; the daemon needs this one


def start():
    return subprocess.Popen(
        ['/bin/sh', '-c', 'LISTEN_PID=$$ LISTEN_FDS=1 exec "$@"', 'sh', *cmd],
        preexec_fn=lambda: os.dup2(fd, 3),
        close_fds=False,
    )


def stop(p):
    p.send_signal(signal.SIGTERM)
    code = p.wait()
    print(f'daemon exited {code}', flush=True)


daemon = start()
requests = []
signal.signal(signal.SIGUSR1, lambda *_: requests.append('restart'))
signal.signal(signal.SIGTERM, lambda *_: requests.append('stop'))
print('holding', flush=True)
while True:
    signal.pause() if not requests else None
    while requests:
        what = requests.pop(0)
        stop(daemon)
        if what == 'stop':
            sys.exit(0)
        daemon = start()
        print('daemon restarted', flush=True)
