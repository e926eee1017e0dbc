#!/usr/bin/python3
"""tests/dns/scripted.py - a UDP DNS responder for what a real server will not do on purpose
(adapted from shared/reference/test-services/slowdns.py; stdlib only).
usage: scripted.py PORT   (prints "ready" once bound)
Labels anywhere in the name decide: drop -> never answer; dN -> answer after N ms;
servfail -> SERVFAIL; nxd -> NXDOMAIN; garbage -> a reply whose answer section is junk;
noise -> random bytes with the query's id. Names under .arpa get SERVFAIL (a PTR that
cannot be looked up). Otherwise A -> 127.0.0.2, TXT -> "scripted listing", else NODATA."""
import os, socket, struct, sys, threading, time

port = int(sys.argv[1]) if len(sys.argv) > 1 else 5354
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", port))
print("ready", flush=True)


def question(pkt):
    i, labels = 12, []
    while pkt[i]:
        n = pkt[i]
        labels.append(pkt[i + 1:i + 1 + n].decode("ascii", "replace").lower())
        i += 1 + n
    qtype = struct.unpack("!H", pkt[i + 1:i + 3])[0]
    return labels, qtype, i + 5


def answer(pkt, addr):
    try:
        labels, qtype, qend = question(pkt)
    except (IndexError, struct.error):
        return
    if "drop" in labels:
        return
    for l in labels:
        if len(l) > 1 and l[0] == "d" and l[1:].isdigit():
            time.sleep(int(l[1:]) / 1000.0)
    q = pkt[12:qend]
    if "noise" in labels:
        s.sendto(pkt[:2] + os.urandom(40), addr)
        return
    rcode, rrs = 0, []
    if "servfail" in labels or labels[-1:] == ["arpa"]:
        rcode = 2
    elif "nxd" in labels:
        rcode = 3
    elif "garbage" in labels:
        rrs = [b"\xc0\x0c" + struct.pack("!HHIH", qtype, 1, 0, 40) + os.urandom(13)]
    elif qtype == 1:
        rrs = [b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 0, 4) + bytes([127, 0, 0, 2])]
    elif qtype == 16:
        t = b"scripted listing"
        rrs = [b"\xc0\x0c" + struct.pack("!HHIH", 16, 1, 0, len(t) + 1) + bytes([len(t)]) + t]
    hdr = pkt[:2] + struct.pack("!HHHHH", 0x8580 | rcode, 1, len(rrs), 0, 0)
    s.sendto(hdr + q + b"".join(rrs), addr)


while True:
    pkt, addr = s.recvfrom(4096)
    threading.Thread(target=answer, args=(pkt, addr), daemon=True).start()
