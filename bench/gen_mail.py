#!/usr/bin/python3
"""gen_mail.py - write N messages shaped like verification mail.

Usage: gen_mail.py [--seed S] [--prefix P] COUNT OUTDIR

Writes COUNT files into OUTDIR (created if missing), named like Maildir
files ("<time>.M<n>P<pid>.bench"), each a complete RFC 5322 message as
Postfix's local/virtual delivery leaves it (Return-Path, X-Original-To,
Delivered-To, two Received hops), with a body that is one of:

  35% IMS2.0 DATA WAVEFORM (WID2/STA2/DAT2 CM6 lines/CHK2 per channel)
  20% IMS2.0 DATA SAMPLEPHD (#Header ... #g_Spectrum blocks)
  20% IMS2.0 REQUEST from an AutoDRM user (environment + request lines)
  15% station SOH: DATA STA_STATUS / CHAN_STATUS tables
  10% plain operator mail (text)

The text is 1-8 KiB.  About 10% of the messages are multipart/mixed with
a base64 attachment of 20-200 KiB (a compressed GSE/PHD file, random
bytes).  The RNG is seeded (default 20261204), so the same COUNT and seed
give the same bytes on any machine.  Every message is different (unique
Message-ID, MSG_ID and random payload), so none is a duplicate.

Prints one line to stdout: "files=N bytes=B attachments=A".
"""

import argparse
import base64
import os
import random
import sys

STATIONS = ["ARCES", "ASAR", "BOSA", "CMAR", "ESDC", "FINES", "GERES", "ILAR",
            "KSRS", "MKAR", "NOA", "PDAR", "SONM", "TXAR", "WRA", "YKA",
            "ZALV", "AKASG", "BRTR", "CPUP"]
RN_STATIONS = ["ARP01", "AUP04", "CAP14", "DEP33", "FRP27", "JPP37", "SEP63",
               "USP70", "RUP54", "CNP20"]
CHANNELS = ["BHZ", "BHN", "BHE", "SHZ", "HHZ", "HHN", "HHE"]
CM6 = "+-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
USERS = ["ops", "analyst", "ndc-at", "ndc-de", "ndc-fi", "ndc-jp", "ndc-za",
         "autodrm", "gci", "rn-lab"]
DOMAINS = ["ndc.example.at", "bgr.example.de", "isp.example.fi",
           "jwa.example.jp", "cgs.example.za", "idc.example.org"]
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep",
          "Oct", "Nov", "Dec"]
DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


class Gen:
    def __init__(self, seed, prefix):
        self.r = random.Random(seed)
        self.prefix = prefix
        self.n = 0

    # ---- envelope pieces ----
    def when(self):
        r = self.r
        return (2026, r.randint(1, 12), r.randint(1, 28), r.randint(0, 23),
                r.randint(0, 59), r.randint(0, 59))

    def rfc_date(self, t):
        y, mo, d, h, mi, s = t
        return "%s, %d %s %d %02d:%02d:%02d +0000" % (
            DAYS[(d + mo) % 7], d, MONTHS[mo - 1], y, h, mi, s)

    def ims_date(self, t, frac=True):
        y, mo, d, h, mi, s = t
        if frac:
            return "%04d/%02d/%02d %02d:%02d:%02d.%03d" % (
                y, mo, d, h, mi, s, self.r.randint(0, 999))
        return "%04d/%02d/%02d %02d:%02d:%02d" % (y, mo, d, h, mi, s)

    def headers(self, sender, subject, t, extra):
        r = self.r
        qid = "".join(r.choice("0123456789ABCDEF") for _ in range(10))
        date = self.rfc_date(t)
        ip = "192.0.2.%d" % r.randint(1, 254)
        mid = "<%s.%d.%08x@%s>" % (self.prefix, self.n, r.getrandbits(32),
                                   sender.split("@")[1])
        h = [
            "Return-Path: <%s>" % sender,
            "X-Original-To: messages@vm.ctbto.example",
            "Delivered-To: messages@vm.ctbto.example",
            "Received: from mx1.ctbto.example (mx1.ctbto.example [10.1.2.3])",
            "\tby vm.ctbto.example (Postfix) with ESMTPS id %s" % qid,
            "\tfor <messages@vm.ctbto.example>; %s (UTC)" % date,
            "Received: from relay.%s (relay.%s [%s])" % (
                sender.split("@")[1], sender.split("@")[1], ip),
            "\tby mx1.ctbto.example (Postfix) with ESMTP id %s" % qid[::-1],
            "\tfor <messages@vm.ctbto.example>; %s (UTC)" % date,
            "From: %s" % sender,
            "To: messages@vm.ctbto.example",
            "Subject: %s" % subject,
            "Date: %s" % date,
            "Message-ID: %s" % mid,
            "MIME-Version: 1.0",
        ]
        return h + extra

    # ---- bodies (lists of lines), sized to a target in bytes ----
    def waveform(self, target, t):
        r = self.r
        sta = r.choice(STATIONS)
        lines = ["BEGIN IMS2.0", "MSG_TYPE DATA",
                 "MSG_ID %d %s_NDC" % (r.randint(10 ** 7, 10 ** 9 - 1), sta[:3]),
                 "REF_ID %d CTBT_IDC" % r.randint(10 ** 7, 10 ** 8 - 1),
                 "DATA_TYPE WAVEFORM IMS2.0:CM6"]
        size = sum(len(x) + 1 for x in lines)
        chans = r.sample(CHANNELS, 3)
        per = max(200, (target - size) // 3)
        for ch in chans:
            nsamp = per * 3 // 2
            hdr = ["WID2 %s %-5s %-3s      CM6 %8d %11.6f %10.2e %7.3f STS-2   -1.0" % (
                       self.ims_date(t), sta, ch, nsamp, 40.0, 1.0e-9 * r.randint(1, 99),
                       1.0),
                   "STA2 %-9s %9.5f %10.5f WGS84 %12.3f %5.3f" % (
                       "IM", r.uniform(-80, 80), r.uniform(-180, 180),
                       r.uniform(0, 3), 0.0),
                   "DAT2"]
            lines += hdr
            left = per - sum(len(x) + 1 for x in hdr)
            while left > 0:
                n = min(80, left)
                lines.append("".join(r.choices(CM6, k=n)))
                left -= n + 1
            lines.append("CHK2 %d" % r.randint(0, 99999999))
        lines.append("STOP")
        return "waveform %s" % sta, lines

    def samplephd(self, target, t):
        r = self.r
        sta = r.choice(RN_STATIONS)
        det = sta + "_001"
        lines = ["BEGIN IMS2.0", "MSG_TYPE DATA",
                 "MSG_ID %d %s" % (r.randint(10 ** 7, 10 ** 9 - 1), sta),
                 "DATA_TYPE SAMPLEPHD",
                 "#Header 3", "%s %s P FULL PREL" % (sta, det),
                 "%s%s" % (sta, self.ims_date(t, False).replace("/", "").replace(
                     " ", "").replace(":", "")),
                 "0 0 0", self.ims_date(t, False),
                 "#Comment", "Automatic transmission",
                 "#Collection", "%s %s %10.2f" % (self.ims_date(t), self.ims_date(t),
                                                  r.uniform(10000, 30000)),
                 "#Acquisition", "%s %10.2f %10.2f" % (self.ims_date(t),
                                                       r.uniform(70000, 90000),
                                                       r.uniform(70000, 90000)),
                 "#Processing", "%.3f %.3f %.3f" % (r.uniform(0, 1), r.uniform(0, 1),
                                                    r.uniform(0, 1)),
                 "#g_Energy"]
        for i in range(8):
            lines.append("%10.3f %10.3f %8.4f" % (50 + i * 250, 10 + i * 330,
                                                  r.uniform(0, 0.1)))
        lines.append("#g_Resolution")
        for i in range(6):
            lines.append("%10.3f %8.4f %8.4f" % (50 + i * 300, r.uniform(0.8, 2.5),
                                                 r.uniform(0, 0.05)))
        lines.append("#g_Spectrum")
        size = sum(len(x) + 1 for x in lines) + 5
        nch = 0
        lines.append("%d %d" % (8192, 2800))
        while size < target:
            vals = " ".join("%6d" % r.randint(0, 4000) for _ in range(5))
            lines.append("%5d %s" % (nch, vals))
            size += len(lines[-1]) + 1
            nch += 5
        lines.append("STOP")
        return "samplephd %s" % sta, lines

    def request(self, target, t):
        r = self.r
        lines = ["BEGIN IMS2.0", "MSG_TYPE REQUEST",
                 "MSG_ID %s_%d %s" % (r.choice(USERS), r.randint(1, 99999),
                                      r.choice(["NDC", "ANY_NDC", "CTBT_IDC"])),
                 "E-MAIL %s@%s" % (r.choice(USERS), r.choice(DOMAINS))]
        size = sum(len(x) + 1 for x in lines)
        while size < target:
            t1 = self.ims_date(self.when(), False)
            block = ["TIME %s TO %s" % (t1, t1[:11] + "23:59:59"),
                     "STA_LIST %s" % ",".join(r.sample(STATIONS, r.randint(1, 6))),
                     "CHAN_LIST %s" % ",".join(r.sample(CHANNELS, 2)),
                     r.choice(["WAVEFORM IMS2.0:CM6", "ARRIVAL:AUTOMATIC IMS2.0",
                               "BULLETIN IMS2.0:SHORT", "STA_STATUS IMS2.0",
                               "CHAN_STATUS IMS2.0", "OUTAGE IMS2.0",
                               "SLSD:AUTOMATIC IMS2.0", "RLR IMS2.0"]),
                     "%% request note %s" % " ".join(
                         r.choice(["seismic", "event", "check", "re-run", "gap",
                                   "analyst", "review", "station"]) for _ in range(8))]
            lines += block
            size += sum(len(x) + 1 for x in block)
        lines.append("STOP")
        return "autodrm request", lines

    def soh(self, target, t):
        r = self.r
        kind = r.choice(["STA_STATUS", "CHAN_STATUS"])
        lines = ["BEGIN IMS2.0", "MSG_TYPE DATA",
                 "MSG_ID %d GCI" % r.randint(10 ** 7, 10 ** 9 - 1),
                 "DATA_TYPE %s IMS2.0" % kind,
                 "Report period from %s to %s" % (self.ims_date(t, False),
                                                   self.ims_date(t, False)),
                 "Net       Sta       Chan Aux      %  Data Avail  Gaps  Ovlp  Time"]
        size = sum(len(x) + 1 for x in lines)
        while size < target:
            ln = "IMS_SEIS  %-9s %-4s        %7.3f  %6.3f %5d %5d  %s" % (
                r.choice(STATIONS), r.choice(CHANNELS), r.uniform(90, 100),
                r.uniform(90, 100), r.randint(0, 20), r.randint(0, 5),
                self.ims_date(t, False))
            lines.append(ln)
            size += len(ln) + 1
        lines.append("STOP")
        return "soh %s" % kind.lower(), lines

    def plain(self, target, t):
        r = self.r
        words = ["station", "outage", "maintenance", "digitizer", "GPS",
                 "calibration", "the", "a", "of", "is", "will", "be", "on",
                 "tomorrow", "restart", "authentication", "key", "rotation",
                 "data", "gap", "latency", "detector", "filter", "sample",
                 "operator", "please", "confirm", "received", "ticket"]
        lines = ["Dear colleagues,", ""]
        size = 20
        while size < target:
            ln = " ".join(r.choice(words) for _ in range(r.randint(8, 14)))
            lines.append(ln[0].upper() + ln[1:] + ".")
            size += len(lines[-1]) + 1
            if r.random() < 0.15:
                lines.append("")
                size += 1
        lines += ["", "Best regards,", "Station operations"]
        return "ops: %s" % r.choice(["outage notice", "maintenance window",
                                     "key rotation", "ticket update"]), lines

    # ---- one message ----
    def message(self):
        r = self.r
        self.n += 1
        t = self.when()
        kind = r.random()
        target = r.randint(1024, 8192) - 900   # headers are ~900 bytes
        if kind < 0.35:
            subj, body = self.waveform(target, t)
        elif kind < 0.55:
            subj, body = self.samplephd(target, t)
        elif kind < 0.75:
            subj, body = self.request(target, t)
        elif kind < 0.90:
            subj, body = self.soh(target, t)
        else:
            subj, body = self.plain(target, t)
        sender = "%s@%s" % (r.choice(USERS), r.choice(DOMAINS))
        att = r.random() < 0.10
        if not att:
            hdr = self.headers(sender, subj, t,
                               ["Content-Type: text/plain; charset=us-ascii",
                                "Content-Transfer-Encoding: 7bit"])
            text = "\n".join(hdr) + "\n\n" + "\n".join(body) + "\n"
            return text.encode("ascii"), False
        b = "=_bench_%d_%08x" % (self.n, r.getrandbits(32))
        hdr = self.headers(sender, subj + " (attached)", t,
                           ['Content-Type: multipart/mixed; boundary="%s"' % b])
        blob = r.randbytes(r.randint(20 * 1024, 200 * 1024) * 3 // 4)
        enc = base64.encodebytes(blob).decode("ascii")
        fname = "%s_%d.gse.gz" % (subj.split()[-1].strip("()"), self.n)
        parts = ["\n".join(hdr), "", "This is a multi-part message in MIME format.",
                 "--" + b, "Content-Type: text/plain; charset=us-ascii",
                 "Content-Transfer-Encoding: 7bit", ""] + body + [
                 "--" + b,
                 'Content-Type: application/gzip; name="%s"' % fname,
                 'Content-Disposition: attachment; filename="%s"' % fname,
                 "Content-Transfer-Encoding: base64", "", enc.rstrip("\n"),
                 "--" + b + "--", ""]
        return "\n".join(parts).encode("ascii"), True


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=20261204)
    ap.add_argument("--prefix", default="bench")
    ap.add_argument("count", type=int)
    ap.add_argument("outdir")
    a = ap.parse_args()
    os.makedirs(a.outdir, exist_ok=True)
    g = Gen(a.seed, a.prefix)
    total = natt = 0
    for i in range(a.count):
        data, att = g.message()
        name = "%d.M%06dP%d.bench" % (1764800000 + i // 1000, i, 4242)
        with open(os.path.join(a.outdir, name), "wb") as f:
            f.write(data)
        total += len(data)
        natt += att
    print("files=%d bytes=%d attachments=%d" % (a.count, total, natt))
    return 0


if __name__ == "__main__":
    sys.exit(main())
