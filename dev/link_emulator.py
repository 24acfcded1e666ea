#!/usr/bin/env python3
"""A lossy, slow link between two TUN devices, for the fault bed.

The kernel here has no netem (CONFIG_NET_SCH_NETEM is not set), so this
stands in for `tc qdisc ... netem delay D loss L`: every IP packet that
crosses the link, either way, is held for D ms and dropped with probability
L %. Usage: link_emulator.py TUN_A TUN_B. It opens both devices, prints
"ready", then reads commands on stdin, one per line:

    set DELAY_MS LOSS_PERCENT    answers "ok"

and exits when stdin closes. Python because attaching to a TUN device takes
an ioctl, which Deno cannot make.
"""

import fcntl
import heapq
import os
import random
import select
import struct
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000


def open_tun(name):
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


def main():
    a, b = open_tun(sys.argv[1]), open_tun(sys.argv[2])
    other = {a: b, b: a}
    delay, loss = 0.0, 0.0
    queue, seq = [], 0
    print("ready", flush=True)
    while True:
        wait = max(0.0, queue[0][0] - time.monotonic()) if queue else None
        readable, _, _ = select.select([a, b, sys.stdin], [], [], wait)
        for source in readable:
            if source is sys.stdin:
                line = sys.stdin.readline()
                if not line:
                    return
                _, delay_ms, loss_pct = line.split()
                delay, loss = float(delay_ms) / 1000, float(loss_pct) / 100
                print("ok", flush=True)
                continue
            packet = os.read(source, 65535)
            if random.random() < loss:
                continue
            seq += 1
            # Same delay for all: FIFO order, as a real link keeps it.
            heapq.heappush(queue, (time.monotonic() + delay, seq, other[source], packet))
        now = time.monotonic()
        while queue and queue[0][0] <= now:
            _, _, target, packet = heapq.heappop(queue)
            try:
                os.write(target, packet)
            except OSError:
                pass  # The device is down (a partition): the packet is lost.


if __name__ == "__main__":
    main()
