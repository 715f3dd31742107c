#!/usr/bin/env python3
"""Gate on an Autobahn|Testsuite report (stdlib only).

    gate.py REPORT [--run NAME] [--agent AGENT] [--full] [--gate-compression]
            [--compression-only] [--expected-dir DIR] [--update-expected] [--fail-on-change]

REPORT is a wstest outdir (holding index.json) or an index.json file. The gate passes when every
case of groups 1-10 is present and has `behavior` and `behaviorClose` both in {OK, INFORMATIONAL}.
Groups 12 and 13 (permessage-deflate) are reported when present and gated only with
--gate-compression (then they must be present and pass too). --compression-only shows and gates
groups 12 and 13 alone (a run of those cases only), where UNIMPLEMENTED (the extension was not
negotiated) fails like any other verdict that is not OK/INFORMATIONAL.

The results are compared with conformance/expected/<run>.json (case -> behavior/behaviorClose);
every case whose result changed is printed. --update-expected rewrites that file from the report.

Exit status: 0 pass, 1 the gate failed, 2 the report is missing, empty or unreadable (or bad
arguments).
"""
import argparse
import json
import os
import sys

PASSING = ("OK", "INFORMATIONAL")
COLUMNS = ("OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED")
# Worst first: a case is counted in the summary under the worse of behavior and behaviorClose.
# Any other value (e.g. behaviorClose "WRONG CODE", "UNCLEAN") is counted as FAILED.
SEVERITY = {"FAILED": 4, "UNIMPLEMENTED": 3, "NON-STRICT": 2, "INFORMATIONAL": 1, "OK": 0}

# Number of cases per group in autobahntestsuite 25.10.1 (there is no group 8); used to detect a
# run that stopped early. 1-10: 301 cases, all: 517.
GROUP_SIZES = {1: 16, 2: 11, 3: 7, 4: 10, 5: 20, 6: 145, 7: 37, 9: 54, 10: 1, 12: 90, 13: 126}
BASE_GROUPS = (1, 2, 3, 4, 5, 6, 7, 9, 10)
COMPRESSION_GROUPS = (12, 13)

HERE = os.path.dirname(os.path.abspath(__file__))


def case_key(case_id):
    """Sort key for case ids like '6.4.3' (numeric per component)."""
    out = []
    for part in case_id.split("."):
        out.append((0, int(part), "") if part.isdigit() else (1, 0, part))
    return out


def group_of(case_id):
    head = case_id.split(".", 1)[0]
    return int(head) if head.isdigit() else -1


def category(result):
    """The summary column a case falls in: the worse of its two verdicts."""
    worst = "OK"
    for field in ("behavior", "behaviorClose"):
        value = result.get(field)
        value = value if value in SEVERITY else "FAILED"
        if SEVERITY[value] > SEVERITY[worst]:
            worst = value
    return worst


def passes(result):
    return result.get("behavior") in PASSING and result.get("behaviorClose") in PASSING


def load_report(path):
    index = os.path.join(path, "index.json") if os.path.isdir(path) else path
    if not os.path.isfile(index):
        raise SystemExit_(
            "no report at %s: wstest did not write one (did the run start? see the run's logs)" % index)
    try:
        with open(index, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise SystemExit_("cannot read %s: %s" % (index, e))
    if not isinstance(data, dict) or not data:
        raise SystemExit_(
            "EMPTY REPORT %s ({}): wstest ran no case. It exits 0 even when it could not reach "
            "the implementation under test, so this usually means the implementation was not "
            "reachable or the client never connected." % index)
    return index, data


class SystemExit_(Exception):
    """A report problem: exit status 2."""


def pick_agent(data, agent):
    if agent:
        if agent not in data:
            raise SystemExit_("agent %r not in report (agents: %s)" % (agent, ", ".join(sorted(data))))
        return agent
    if len(data) != 1:
        raise SystemExit_("report has several agents (%s): pass --agent" % ", ".join(sorted(data)))
    return next(iter(data))


def summary_table(cases, groups):
    rows = []
    totals = {c: 0 for c in COLUMNS}
    total_cases = 0
    for g in groups:
        in_group = [r for cid, r in cases.items() if group_of(cid) == g]
        counts = {c: 0 for c in COLUMNS}
        for r in in_group:
            counts[category(r)] += 1
        rows.append([str(g), str(len(in_group))] + [str(counts[c]) for c in COLUMNS])
        for c in COLUMNS:
            totals[c] += counts[c]
        total_cases += len(in_group)
    rows.append(["total", str(total_cases)] + [str(totals[c]) for c in COLUMNS])
    header = ["group", "cases"] + list(COLUMNS)
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) for i in range(len(header))]
    fmt = lambda r: "  ".join(r[i].rjust(widths[i]) for i in range(len(r)))
    lines = [fmt(header), fmt(["-" * w for w in widths])]
    lines += [fmt(r) for r in rows[:-1]] + [fmt(["-" * w for w in widths]), fmt(rows[-1])]
    return "\n".join(lines)


def verdict(r):
    return "%s/%s" % (r.get("behavior"), r.get("behaviorClose"))


def main(argv):
    p = argparse.ArgumentParser(description="Gate on an Autobahn|Testsuite report.")
    p.add_argument("report", help="wstest outdir or its index.json")
    p.add_argument("--run", help="run name: selects conformance/expected/<run>.json (default: the agent)")
    p.add_argument("--agent", help="agent in the report (default: the only one)")
    p.add_argument("--full", action="store_true", help="the run covered all cases: report groups 12/13")
    p.add_argument("--gate-compression", action="store_true",
                   help="also gate groups 12/13 (once permessage-deflate exists); implies --full")
    p.add_argument("--compression-only", action="store_true",
                   help="the run covered groups 12/13 only: show and gate those")
    p.add_argument("--expected-dir", default=os.path.join(HERE, "expected"))
    p.add_argument("--update-expected", action="store_true",
                   help="write the report's results to <expected-dir>/<run>.json")
    p.add_argument("--fail-on-change", action="store_true",
                   help="also fail when a case's result differs from the expected results")
    a = p.parse_args(argv)
    if a.gate_compression:
        a.full = True

    try:
        index, data = load_report(a.report)
        agent = pick_agent(data, a.agent)
    except SystemExit_ as e:
        print("gate: ERROR: %s" % e, file=sys.stderr)
        return 2
    run = a.run or agent
    cases = data[agent]
    if not isinstance(cases, dict) or not cases:
        print("gate: ERROR: agent %r has no cases in %s" % (agent, index), file=sys.stderr)
        return 2

    shown = BASE_GROUPS + (COMPRESSION_GROUPS if a.full else ())
    gated = BASE_GROUPS + (COMPRESSION_GROUPS if a.gate_compression else ())
    if a.compression_only:
        shown = gated = COMPRESSION_GROUPS
    print("Autobahn report: %s (agent %s, run %s)" % (index, agent, run))
    print(summary_table(cases, shown))
    extra = sorted({group_of(c) for c in cases} - set(shown))
    if extra:
        print("(groups present but not shown: %s)" % ", ".join(map(str, extra)))

    problems = []
    for g in gated:
        have = sum(1 for c in cases if group_of(c) == g)
        if have < GROUP_SIZES[g]:
            problems.append("group %d: %d of %d cases in the report (run incomplete?)" % (g, have, GROUP_SIZES[g]))
    failing = sorted((c for c in cases if group_of(c) in gated and not passes(cases[c])), key=case_key)
    if failing:
        print("\nCases not OK/INFORMATIONAL (behavior/behaviorClose):")
        for c in failing:
            r = cases[c]
            rf = r.get("reportfile")
            print("  %-10s %-28s %s" % (c, verdict(r), os.path.join(os.path.dirname(index), rf) if rf else ""))
    not_gated = sorted((c for c in cases if group_of(c) in shown and group_of(c) not in gated
                        and not passes(cases[c])), key=case_key)
    if not_gated:
        print("\n%d case(s) of groups %s not OK, reported but not gated (no --gate-compression)."
              % (len(not_gated), "/".join(str(g) for g in shown if g not in gated)))

    # ---- expected results ----
    changed = []
    exp_path = os.path.join(a.expected_dir, run + ".json")
    if a.update_expected:
        os.makedirs(a.expected_dir, exist_ok=True)
        out = {c: {"behavior": cases[c].get("behavior"), "behaviorClose": cases[c].get("behaviorClose")}
               for c in sorted(cases, key=case_key)}
        with open(exp_path, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=1)
            f.write("\n")
        print("\nwrote expected results: %s (%d cases)" % (exp_path, len(out)))
    elif os.path.isfile(exp_path):
        with open(exp_path, encoding="utf-8") as f:
            expected = json.load(f)
        for c in sorted(set(expected) | set(cases), key=case_key):
            if group_of(c) not in shown:
                continue
            e, r = expected.get(c), cases.get(c)
            if e is None:
                changed.append("  %-10s new case: %s" % (c, verdict(r)))
            elif r is None:
                changed.append("  %-10s missing from report (expected %s)" % (c, verdict(e)))
            elif (e.get("behavior"), e.get("behaviorClose")) != (r.get("behavior"), r.get("behaviorClose")):
                changed.append("  %-10s %s -> %s" % (c, verdict(e), verdict(r)))
        if changed:
            print("\n%d case(s) changed against %s:" % (len(changed), exp_path))
            print("\n".join(changed))
        else:
            print("\nno change against %s" % exp_path)
    else:
        print("\nno expected results at %s (write them with --update-expected)" % exp_path)

    if a.fail_on_change and changed:
        problems.append("%d case(s) changed against the expected results" % len(changed))
    if failing:
        problems.append("%d case(s) of groups %s not OK/INFORMATIONAL"
                        % (len(failing), ",".join(map(str, gated))))
    if problems:
        print("\nGATE FAILED (%s):" % run)
        for pr in problems:
            print("  - " + pr)
        return 1
    print("\nGATE PASSED (%s): %d cases of groups %s all OK/INFORMATIONAL"
          % (run, sum(1 for c in cases if group_of(c) in gated), ",".join(map(str, gated))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
