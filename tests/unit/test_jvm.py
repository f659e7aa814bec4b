"""The driver JVM's set-up (lakehouse/jvm.py): what spark-env.sh says, and when the archive is rebuilt."""

from __future__ import annotations

import subprocess
from pathlib import Path

from lakehouse import jvm


def _jars(tmp_path: Path) -> list[str]:
    jars = []
    for name in ("delta-spark.jar", "delta-storage.jar"):
        (tmp_path / name).write_bytes(b"jar")
        jars.append(str(tmp_path / name))
    return jars


def test_launch_env_keeps_the_conf_folder_empty_and_names_delta_and_the_archive(tmp_path):
    jars = _jars(tmp_path)
    conf = jvm.jvm_dir(tmp_path / "cache") / "spark-conf"
    conf.mkdir(parents=True)
    (conf / "spark-defaults.conf").write_text("stray")  # would switch CDS off for every run
    env = jvm.launch_env(tmp_path / "cache", jars, "-XX:SharedArchiveFile=/x.jsa")
    assert Path(env["SPARK_CONF_DIR"]) == conf.resolve() and not any(conf.iterdir())
    assert env["SPARK_DIST_CLASSPATH"] == ":".join(jars)
    opts = env["SPARK_SUBMIT_OPTS"].split()
    assert f"-Dspark.jars={','.join(jars)}" in opts
    assert "-Dspark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension" in opts
    assert opts[3:5] == ["-XX:SharedArchiveFile=/x.jsa", "-Xshare:auto"]
    assert "-XX:TieredStopAtLevel=1" in opts
    assert "-XX:ReservedCodeCacheSize=240m" in opts  # C1-only alone shrinks the code cache to 48 MB
    assert "SharedArchiveFile" not in jvm.launch_env(tmp_path / "cache", jars, None)["SPARK_SUBMIT_OPTS"]


def test_spark_env_sh_exports_the_settings_and_lets_the_callers_options_win(tmp_path):
    env = jvm.launch_env(tmp_path / "cache", _jars(tmp_path), "-XX:SharedArchiveFile=/x.jsa")
    script = tmp_path / "spark-env.sh"
    script.write_text(jvm.spark_env_text(env))
    # Sourced the way Spark's load-spark-env.sh does it (set -a), with a caller's own option.
    shown = subprocess.run(
        ["bash", "-c", f'SPARK_SUBMIT_OPTS=-Dmine=1; set -a; . {script}; set +a; env'],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    values = dict(line.split("=", 1) for line in shown.splitlines() if line.startswith("SPARK_"))
    assert values["SPARK_CONF_DIR"] == env["SPARK_CONF_DIR"]
    assert values["SPARK_DIST_CLASSPATH"] == env["SPARK_DIST_CLASSPATH"]
    assert values["SPARK_SUBMIT_OPTS"] == env["SPARK_SUBMIT_OPTS"] + " -Dmine=1"


def test_the_archive_name_changes_with_a_jar(tmp_path):
    jars = _jars(tmp_path)
    before = jvm.archive_path(tmp_path / "cache", jars)
    assert before == jvm.archive_path(tmp_path / "cache", jars)
    Path(jars[0]).write_bytes(b"another jar")
    assert jvm.archive_path(tmp_path / "cache", jars) != before


def test_a_run_with_much_new_input_gets_the_full_jit(tmp_path):
    from lakehouse.batches import Ledger
    from lakehouse.bronze.fct_event_stream import JOB
    from lakehouse.launcher import decide_all, is_heavy
    from lakehouse.session import FULL_JIT
    from tests.conftest import make_config

    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "day1.csv").write_bytes(b"x" * (2 * 2**20))
    (landing / "notes.txt").write_bytes(b"x" * (8 * 2**20))  # not an export: not counted

    def full_jit(mb: int, **values) -> bool:
        config = make_config(tmp_path / "wh", landing, spark__heavy_run_from_new_input_mb=mb)
        values = {"input": None, "full_refresh": False, **values}
        return is_heavy(config, values, decide_all([JOB], config, values, Ledger()))

    assert full_jit(2)  # 2 MB of new CSV (no warehouse yet: every file is new)
    assert not full_jit(3)
    assert full_jit(3, full_refresh=True)
    assert FULL_JIT == "-XX:TieredStopAtLevel=4"


def test_a_first_runs_archive_is_kept_once_its_jvm_has_exited(tmp_path):
    import sys
    import time

    target = tmp_path / "driver-abc.jsa"
    dump = tmp_path / "driver-abc.jsa.42.partial"
    # A stand-in for the exiting JVM: its command line names the dump, and it writes it before exiting.
    writer = subprocess.Popen([sys.executable, "-c", "import sys, time; time.sleep(0.6); open(sys.argv[1], 'wb')"
                               ".write(b'archive')", str(dump), f"-XX:ArchiveClassesAtExit={dump}"])  # fmt: skip
    time.sleep(0.2)
    assert jvm._writers_of(dump) == [writer.pid]
    assert jvm.keep_dump(dump, target, timeout=30)
    assert writer.poll() == 0 and target.read_bytes() == b"archive" and not dump.exists()
    # A run that started no JVM (nothing to do) wrote nothing: nothing kept, the archive stays.
    assert not jvm.keep_dump(tmp_path / "driver-abc.jsa.43.partial", target, timeout=1)
    # A killed run's leftover is removed; an older archive is replaced by the kept one.
    (tmp_path / "driver-abc.jsa.44.partial").write_bytes(b"half")
    (tmp_path / "driver-old.jsa").write_bytes(b"old")
    target.unlink()
    (tmp_path / "driver-abc.jsa.45.partial").write_bytes(b"whole")
    assert jvm.keep_dump(tmp_path / "driver-abc.jsa.45.partial", target, timeout=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["driver-abc.jsa"]


def _jdk(folder, version):
    (folder / "bin").mkdir(parents=True)
    (folder / "bin" / "java").write_text("")
    (folder / "release").write_text(f'IMPLEMENTOR="x"\nJAVA_VERSION="{version}"\n')
    return folder


def test_the_engine_prefers_a_java_25_of_at_least_25_0_3_and_falls_back_to_the_environments(tmp_path, monkeypatch):
    from lakehouse import engine
    from lakehouse.config import load_config

    _jdk(tmp_path / "java-17", "17.0.15")
    _jdk(tmp_path / "temurin-25-old", "25.0.2")
    assert engine.preferred_jdk([str(tmp_path)]) is None  # 25 before 25.0.3: Spark 4.2 deprecates it
    good = _jdk(tmp_path / "temurin-25", "25.0.3")
    assert engine.jdk_release_version(good) == (25, 0, 3)
    assert engine.preferred_jdk([str(tmp_path)]) == str(good)
    assert engine.preferred_jdk([str(tmp_path / "missing")]) is None

    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "java-17"))
    config = load_config()
    monkeypatch.setattr(engine, "JDK_FOLDERS", ())
    assert engine.java_home(config) == str(tmp_path / "java-17")  # auto, no 25: the environment's
    assert engine.java_home(config.with_overrides(engine__java_home="")) == str(tmp_path / "java-17")
    assert engine.java_home(config.with_overrides(engine__java_home=str(good))) == str(good)


def test_the_engines_aot_cache_is_recorded_privately_then_shared_and_only_on_java_25(tmp_path):
    from lakehouse import engine
    from lakehouse.config import load_config

    config = load_config().with_overrides(engine__state_dir=str(tmp_path / "engine"),
                                          paths__jar_cache=str(tmp_path / "jars"))  # fmt: skip
    assert engine.java_major('openjdk version "17.0.15" 2025-04-15') == 17
    assert engine.aot_cache(config, 'openjdk version "17.0.15" 2025-04-15') is None
    assert engine.aot_cache(config.with_overrides(engine__aot_cache=False), 'openjdk version "25.0.3"') is None
    cache = engine.aot_cache(config, 'openjdk version "25.0.3" 2026-04-21 LTS')
    assert cache.flag() == f"-XX:AOTCacheOutput={cache.recording}"  # none yet: this start records one
    assert cache.recording.parent == tmp_path / "engine" and cache.shared.parent == tmp_path / "jars" / "jvm"
    cache.recording.parent.mkdir(parents=True)
    cache.recording.write_bytes(b"recorded")  # what the JVM writes as it stops
    engine.adopt_aot_caches(config)
    assert not cache.recording.exists() and cache.shared.read_bytes() == b"recorded"
    assert cache.flag() == f"-XX:AOTCache={cache.shared}"  # every later start maps it
    other = engine.aot_cache(config, 'openjdk version "25.0.4" 2026-07-21 LTS')
    assert other.shared != cache.shared  # another JDK: another cache
