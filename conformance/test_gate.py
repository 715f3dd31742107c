#!/usr/bin/env python3
"""Tests of gate.py on synthetic Autobahn reports (stdlib unittest).

    python3 -m unittest discover -s conformance -p 'test_*.py'
"""
import contextlib
import io
import json
import os
import tempfile
import unittest

import gate


def full_report(agent="a", groups=gate.BASE_GROUPS, verdict=("OK", "OK")):
    cases = {}
    for g in groups:
        for i in range(1, gate.GROUP_SIZES[g] + 1):
            cases["%d.1.%d" % (g, i)] = {"behavior": verdict[0], "behaviorClose": verdict[1],
                                         "reportfile": "a_case_%d_1_%d.json" % (g, i)}
    return {agent: cases}


class GateTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name
        self.expected = os.path.join(self.dir, "expected")

    def tearDown(self):
        self.tmp.cleanup()

    def run_gate(self, report, *args):
        path = os.path.join(self.dir, "index.json")
        with open(path, "w") as f:
            json.dump(report, f)
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            rc = gate.main([self.dir, "--expected-dir", self.expected] + list(args))
        return rc, out.getvalue()

    def test_all_ok_passes(self):
        rc, out = self.run_gate(full_report())
        self.assertEqual(rc, 0, out)
        self.assertIn("GATE PASSED", out)
        self.assertRegex(out, r"total\s+301\s+301\s+0\s+0\s+0\s+0")

    def test_informational_passes(self):
        r = full_report()
        r["a"]["7.1.3"]["behavior"] = "INFORMATIONAL"
        r["a"]["7.1.4"]["behaviorClose"] = "INFORMATIONAL"
        rc, out = self.run_gate(r)
        self.assertEqual(rc, 0, out)

    def test_non_strict_fails(self):
        r = full_report()
        r["a"]["3.1.2"]["behavior"] = "NON-STRICT"
        rc, out = self.run_gate(r)
        self.assertEqual(rc, 1)
        self.assertIn("3.1.2", out)
        self.assertIn("GATE FAILED", out)

    def test_close_verdict_counts(self):
        r = full_report()
        r["a"]["7.1.5"]["behaviorClose"] = "WRONG CODE"  # any other value is a failure
        rc, out = self.run_gate(r)
        self.assertEqual(rc, 1)
        self.assertIn("OK/WRONG CODE", out)
        self.assertRegex(out, r"\n\s+7\s+37\s+36\s+0\s+0\s+0\s+1\n")

    def test_empty_report_is_an_error(self):
        rc, out = self.run_gate({})
        self.assertEqual(rc, 2)
        self.assertIn("EMPTY REPORT", out)

    def test_missing_report_is_an_error(self):
        out = io.StringIO()
        with contextlib.redirect_stderr(out):
            rc = gate.main([os.path.join(self.dir, "nothing")])
        self.assertEqual(rc, 2)

    def test_incomplete_run_fails(self):
        r = full_report()
        del r["a"]["9.1.54"]
        rc, out = self.run_gate(r)
        self.assertEqual(rc, 1)
        self.assertIn("group 9: 53 of 54", out)

    def test_compression_reported_not_gated(self):
        r = full_report(groups=gate.BASE_GROUPS + gate.COMPRESSION_GROUPS)
        for c in r["a"]:
            if gate.group_of(c) in (12, 13):
                r["a"][c]["behavior"] = "UNIMPLEMENTED"
        rc, out = self.run_gate(r, "--full")
        self.assertEqual(rc, 0, out)
        self.assertRegex(out, r"\n\s+12\s+90\s+0\s+0\s+0\s+90\s+0\n")
        rc, out = self.run_gate(r, "--gate-compression")
        self.assertEqual(rc, 1)

    def test_compression_only_run(self):
        r = full_report(groups=gate.COMPRESSION_GROUPS)
        rc, out = self.run_gate(r, "--compression-only")
        self.assertEqual(rc, 0, out)
        self.assertRegex(out, r"total\s+216\s+216\s+0\s+0\s+0\s+0")
        # The base groups are not expected in such a run.
        self.assertNotIn("group 1:", out)
        r["a"]["13.1.3"]["behavior"] = "UNIMPLEMENTED"
        rc, out = self.run_gate(r, "--compression-only")
        self.assertEqual(rc, 1)
        self.assertIn("13.1.3", out)
        del r["a"]["12.1.1"]
        rc, out = self.run_gate(r, "--compression-only")
        self.assertIn("group 12: 89 of 90", out)

    def test_several_agents_need_agent(self):
        r = full_report("a")
        r.update(full_report("b"))
        self.assertEqual(self.run_gate(r)[0], 2)
        self.assertEqual(self.run_gate(r, "--agent", "b")[0], 0)

    def test_expected_roundtrip_and_changes(self):
        r = full_report()
        rc, out = self.run_gate(r, "--run", "x", "--update-expected")
        self.assertEqual(rc, 0, out)
        with open(os.path.join(self.expected, "x.json")) as f:
            self.assertEqual(len(json.load(f)), 301)
        rc, out = self.run_gate(r, "--run", "x")
        self.assertIn("no change against", out)
        r["a"]["6.1.1"]["behavior"] = "INFORMATIONAL"
        del r["a"]["1.1.1"]
        rc, out = self.run_gate(r, "--run", "x")
        self.assertIn("6.1.1      OK/OK -> INFORMATIONAL/OK", out)
        self.assertIn("1.1.1      missing from report", out)
        self.assertEqual(rc, 1)  # 1.1.1 missing: group 1 incomplete
        r["a"]["1.1.1"] = {"behavior": "OK", "behaviorClose": "OK"}
        self.assertEqual(self.run_gate(r, "--run", "x")[0], 0)  # a change alone passes...
        self.assertEqual(self.run_gate(r, "--run", "x", "--fail-on-change")[0], 1)  # ...unless asked


if __name__ == "__main__":
    unittest.main()
