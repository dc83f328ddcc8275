"""Routing in the daemon: topic = auto from the IMS content, Sieve rules on
a queue, and SIGHUP reloads that keep the old rules when the new ones fail.
"""
import json
import os
import subprocess

from conftest import REPO, VMINGEST, message, wait_for

DEMO = os.path.join(REPO, "tests", "data", "demo")


def demo(name):
    with open(os.path.join(DEMO, name), "rb") as f:
        return f.read()


def test_auto_topic_from_ims_content(make_daemon):
    d = make_daemon(queues={"default": {"topic": "auto"}}).start()
    md = d.maildir()
    md.deliver(demo("01-waveform.eml"))
    md.deliver(demo("02-samplephd.eml"))
    md.deliver(demo("03-request.eml"))
    md.deliver(message(9))
    d.wait_records(4)
    topics = {r["subject"]: r["topic"] for r in d.records()}
    assert topics["WAVEFORM data for XA01"] == "ims.data.waveform"
    assert topics["SAMPLEPHD XA02-2026338"] == "ims.data.samplephd"
    assert topics["waveform request"] == "ims.request.waveform"
    assert topics["test message 9"] == "mail.other"
    wf = [r for r in d.records() if r["topic"] == "ims.data.waveform"][0]
    assert wf["ims"][0]["msg_id"] == "XA01_20261204_001"
    assert wf["ims"][0]["ref_id"]["id"] == "DEMO_REQ_0001"
    assert wf["topics"] == [{"topic": "ims.data.waveform", "topic_seq": 1}]
    d.stop()


RULES_V1 = """require ["fileinto", "copy", "vnd.vmingest"];
# radionuclide data to rn.*, a copy of waveforms to an archive topic
if ims "data_type" "SAMPLEPHD" {
    fileinto "rn.phd";
    stop;
}
if header :contains "subject" "WAVEFORM" {
    fileinto :copy "seismic.archive";
}
if header :is "subject" "drop me" {
    discard;
    stop;
}
if header :contains "subject" "suspicious" {
    quarantine "looks suspicious";
}
"""

RULES_V2 = """require ["fileinto"];
if header :contains "subject" "test message" {
    fileinto "v2.topic";
}
"""


def test_rules_on_a_queue_and_sighup(make_daemon, tmp_path):
    rules = tmp_path / "rules.sieve"
    rules.write_text(RULES_V1)
    d = make_daemon(queues={"default": {"topic": "mail.default", "rules": str(rules)}}).start()
    md = d.maildir()
    md.deliver(demo("02-samplephd.eml"))
    md.deliver(demo("01-waveform.eml"))
    md.deliver(message(1, subject="drop me"))
    md.deliver(message(2, subject="suspicious attachment"))
    md.deliver(message(3))
    d.wait_records(5)
    recs = {r["subject"]: r for r in d.records()}
    phd = recs["SAMPLEPHD XA02-2026338"]
    assert [t["topic"] for t in phd["topics"]] == ["rn.phd"]
    assert phd["disposition"] == "PUBLISHED"
    assert phd["rules"]["script"] == str(rules)
    assert phd["rules"]["fired_lines"], phd["rules"]
    wf = recs["WAVEFORM data for XA01"]
    # fileinto :copy plus the implicit keep on the queue's default topic
    assert [t["topic"] for t in wf["topics"]] == ["seismic.archive", "mail.default"]
    dropped = recs["drop me"]
    assert dropped["disposition"] == "DISCARDED" and dropped["topics"] == []
    q = recs["suspicious attachment"]
    assert q["disposition"] == "QUARANTINED" and q["reason"] == "looks suspicious"
    assert [t["topic"] for t in recs["test message 3"]["topics"]] == ["mail.default"]

    # a broken script at SIGHUP: the old rules stay in force
    rules.write_text('require ["fileinto"];\nif header :bogus "x" {\n')
    d.hup()
    wait_for(lambda: "keeping the running rules" in d.log(), what="reload refused")
    assert d.alive()
    md.deliver(demo("02-samplephd.eml").replace(b"XA02-2026338", b"XA02-2026339"))
    d.wait_records(6)
    assert [t["topic"] for t in d.records()[-1]["topics"]] == ["rn.phd"]

    # a good script at SIGHUP takes over
    rules.write_text(RULES_V2)
    d.hup()
    wait_for(lambda: "configuration reloaded" in d.log(), what="reload")
    md.deliver(message(4))
    d.wait_records(7)
    assert [t["topic"] for t in d.records()[-1]["topics"]] == ["v2.topic"]

    # what a subscriber to rn. receives is what the rules chose: both spectra
    sub = subprocess.run([VMINGEST, "sub", "--endpoint", d.pub_endpoint,
                          "--replay-endpoint", d.replay_endpoint, "--topic", "rn.",
                          "--from-start", "--count", "2", "--json", "--timeout", "20"],
                         capture_output=True, timeout=60)
    assert sub.returncode == 0, sub.stderr
    got = [json.loads(l) for l in sub.stdout.decode().split("\n") if l.strip()]
    assert [g["subject"] for g in got] == ["SAMPLEPHD XA02-2026338", "SAMPLEPHD XA02-2026339"]
    assert [g["topic_seq"] for g in got] == [1, 2]
    assert d.stop() == 0


def test_broken_rules_at_start_is_fatal_with_position(make_daemon, tmp_path):
    rules = tmp_path / "bad.sieve"
    rules.write_text('require ["fileinto"];\n\nfileinto "ok";\nfrobnicate;\n')
    d = make_daemon(queues={"default": {"rules": str(rules)}})
    d.start(wait=False)
    d.proc.wait(timeout=30)
    assert d.proc.returncode == 1
    assert "bad.sieve:4:" in d.log()
