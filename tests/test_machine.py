"""separation.machine: the one reader of this CPU's flags, for reports and for the int8 verdicts."""
from separation import machine


def test_present_flags_matches_whole_words_in_the_given_order(monkeypatch):
    line = "flags\t\t: fpu avx2 avx512fp16 avx512_vnni amx_tile amx_bf16\n"
    monkeypatch.setattr(machine, "cpu_model_and_flags", lambda: ("Test CPU", line))
    # "avx512f" is only a prefix of another flag here, and "amx_int8" is absent
    assert machine.present_flags(("amx_bf16", "avx512f", "avx2", "amx_int8", "amx_tile")) == ["amx_bf16", "avx2", "amx_tile"]
    assert machine.present_flags(machine.REPORTED_SIMD_FLAGS) == ["avx2", "avx512_vnni", "amx_tile", "amx_bf16"]


def test_present_flags_is_empty_without_a_flags_line(monkeypatch):
    monkeypatch.setattr(machine, "cpu_model_and_flags", lambda: ("arm64", ""))
    assert machine.present_flags(machine.REPORTED_SIMD_FLAGS) == []
