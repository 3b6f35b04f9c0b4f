"""Labs never leak: unique names, teardown on any exit, a sweep for labs of killed processes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from natlab_tools import run_tool, start_stun
from tools.natlab import Lab, LabError, NatType, lab_ids, sweep

pytestmark = pytest.mark.netns

ROOT = Path(__file__).resolve().parents[2]  # the repository root, which holds tools/


def test_teardown_on_exception(netns_ok: None) -> None:
    with pytest.raises(RuntimeError, match="boom"), Lab() as lab:
        lab.add_public("boot")
        host = lab.add_private("alice", NatType.SYMMETRIC)
        sleeper = lab.popen(host, [sys.executable, "-c", "import time; time.sleep(60)"])
        assert lab.id in lab_ids()
        assert len(lab_ids()[lab.id]) == 4  # inet, boot, r1, alice
        raise RuntimeError("boom")
    assert lab.id not in lab_ids()
    assert sleeper.poll() is not None  # processes started in the lab are killed too
    lab.close()  # twice is fine


def test_two_labs_side_by_side(netns_ok: None) -> None:
    with Lab() as one, Lab() as two:
        a1 = one.add_private("alice", NatType.FULL_CONE)
        a2 = two.add_private("alice", NatType.FULL_CONE)
        assert one.id != two.id and a1.netns != a2.netns
        assert a1.ip == a2.ip  # same addresses, separate namespaces: no collision
        # hosts of different labs cannot reach each other (no shared segment)
        assert one.run(a1, ["ip", "-o", "addr"]).stdout.count("10.0.1.2") == 1
    assert one.id not in lab_ids() and two.id not in lab_ids()


def test_sweep_removes_labs_of_dead_processes(netns_ok: None) -> None:
    # a process builds a lab and dies without cleaning up (SIGKILL: no finally, no __exit__)
    code = (
        "import json, os, signal\n"
        "from tools.natlab import Lab, NatType\n"
        "lab = Lab(); lab.start(); lab.add_private('alice', NatType.SYMMETRIC)\n"
        "print(json.dumps(lab.id), flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert proc.returncode == -9, proc.stderr
    orphan = json.loads(proc.stdout)
    assert orphan in lab_ids()
    with Lab() as alive:  # a live lab must survive the sweep
        gone = sweep()
        assert sorted(gone) == sorted(f"{orphan}-{role}" for role in ("inet", "r1", "alice"))
        assert orphan not in lab_ids() and alive.id in lab_ids()


def test_bad_names_and_use_outside_with(netns_ok: None) -> None:
    lab = Lab()
    with pytest.raises(LabError):
        lab.add_public("boot")
    with lab:
        with pytest.raises(ValueError):
            lab.add_public("Bad-Name")
        with pytest.raises(ValueError):
            lab.add_public("inet")
        lab.add_public("boot")
        with pytest.raises(ValueError):
            lab.add_private("boot", NatType.FULL_CONE)
        with pytest.raises(ValueError):
            lab.add_private("carol", "cgnat")


def test_set_nat_changes_behaviour(lab: Lab) -> None:
    stun = lab.add_public("stun", extra_ips=1)
    host = lab.add_private("alice", NatType.PORT_RESTRICTED_CONE)
    server = start_stun(lab, stun)
    args = ("natcheck", "--server", stun.ip, "--other-ip", stun.extra_ips[0])
    assert "fully-random" not in lab.ruleset(host)
    host = lab.set_nat(host, "symmetric")
    assert host.nat is NatType.SYMMETRIC and lab["alice"].nat is NatType.SYMMETRIC
    assert "fully-random" in lab.ruleset(host)
    assert run_tool(lab, host, *args)["mapping"] == "address-and-port-dependent"
    server.close()


def test_fixture_tears_down_after_a_failing_test(netns_ok: None, tmp_path: Path) -> None:
    """Run a failing test that uses the real ``lab`` fixture in a child pytest; its lab must be gone."""
    shutil.copy(Path(__file__).with_name("conftest.py"), tmp_path / "conftest.py")
    (tmp_path / "test_fails.py").write_text(
        "def test_fails(lab):\n"
        "    lab.add_private('alice', 'symmetric')\n"
        "    print('LAB-ID', lab.id, flush=True)\n"
        "    assert False, 'on purpose'\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])},
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "1 failed" in proc.stdout and "on purpose" in proc.stdout
    lab_id = next(line.split()[1] for line in proc.stdout.splitlines() if line.startswith("LAB-ID"))
    assert lab_id not in lab_ids()
