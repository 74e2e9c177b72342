#!/usr/bin/python3
"""Scrape a daemon's /metrics and parse it with prometheus_client (Debian's
python3-prometheus-client), as a Prometheus server would. Checks that the text parses,
that every family the daemon promises is there, and that every histogram is consistent
(cumulative buckets, +Inf equal to _count); prints one line "name{labels} value" per
sample asked for on the command line (NAME or NAME{k=v,...}, summed over what matches).
Exit status 0 ok, 1 a check failed (the reason on stderr), 77 no prometheus_client."""
import sys
import urllib.request

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    print("python3-prometheus-client is not installed", file=sys.stderr)
    sys.exit(77)

REQUIRED = [
    "axactor_info", "axactor_uptime_seconds", "axactor_actors", "axactor_delivered",
    "axactor_asks", "axactor_mailbox_messages", "axactor_mailbox_depth_max",
    "axactor_client_ask_seconds", "axactor_handler_seconds", "axactor_lease_store_ops",
]
CLUSTER = [
    "axactor_shard_owned", "axactor_shard_epoch", "axactor_shard_actors", "axactor_handover_seconds",
    "axactor_owner_wait_seconds", "axactor_peer_up", "axactor_peer_rtt_seconds",
    "axactor_peer_received_bytes", "axactor_peer_sent_bytes", "axactor_peer_heartbeat_rtt_seconds",
    "axactor_live_nodes",
]


def fail(msg):
    print("metrics_check: " + msg, file=sys.stderr)
    sys.exit(1)


def main():
    url, cluster, asks = sys.argv[1], sys.argv[2] == "cluster", sys.argv[3:]
    with urllib.request.urlopen(url, timeout=10) as r:
        ctype = r.headers.get("Content-Type", "")
        text = r.read().decode("utf-8")
    if not ctype.startswith("text/plain"):
        fail("Content-Type is %r" % ctype)
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    for name in REQUIRED + (CLUSTER if cluster else []):
        if name not in fams:
            fail("no metric family %s (have %s)" % (name, sorted(fams)))
    for f in fams.values():
        if f.type != "histogram":
            continue
        series = {}
        for s in f.samples:
            key = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
            series.setdefault(key, {"b": [], "count": None})
            if s.name.endswith("_bucket"):
                series[key]["b"].append((float(s.labels["le"]), s.value))
            elif s.name.endswith("_count"):
                series[key]["count"] = s.value
        for key, v in series.items():
            b = sorted(v["b"])
            if not b or b[-1][0] != float("inf"):
                fail("%s%s has no +Inf bucket" % (f.name, key))
            if any(b[i][1] > b[i + 1][1] for i in range(len(b) - 1)):
                fail("%s%s buckets are not cumulative" % (f.name, key))
            if b[-1][1] != v["count"]:
                fail("%s%s: +Inf %s != _count %s" % (f.name, key, b[-1][1], v["count"]))
    for a in asks:
        name, _, lab = a.partition("{")
        want = dict(kv.split("=", 1) for kv in lab.rstrip("}").split(",") if kv) if lab else {}
        total, found = 0.0, False
        for f in fams.values():
            for s in f.samples:
                if s.name == name and all(s.labels.get(k) == v for k, v in want.items()):
                    total += s.value
                    found = True
        if not found:
            fail("no sample %s" % a)
        print("%s %.17g" % (a, total))


main()
