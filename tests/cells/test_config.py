"""INI -> cell machinery: config sections, solvers, fillers, quantizers, warnings, errors."""

import pytest

from cell_helpers import build_cells
from n2d2py.errors import IniError

BASE = "[c]\nInput=env\nType=Conv\nKernelDims=1 1\nNbOutputs=2\n"


def test_config_precedence_solvers_then_specific():
    cells = build_cells(BASE + "ConfigSection=cfg\n"
                        "[cfg]\nWeightsSolver.LearningRate=0.5\nSolvers.LearningRate=0.1\n"
                        "Solvers.Momentum=0.9\nNoBias=1\n", env=(1, 2, 2))
    c = cells["c"]
    w, b = c.weights[0].solver, c.solvers["Bias"]
    assert w.learning_rate == 0.5 and b.learning_rate == 0.1   # specific prefix wins, any order
    assert w.momentum == 0.9 and b.momentum == 0.9
    assert c.no_bias and c.bias is None
    assert c.weights[0].solver is not c.solvers["Weights"]      # a clone per Parameter


def test_later_config_section_overrides_and_evaluates_in_cell_context():
    cells = build_cells(BASE + "$LR=0.25\nConfigSection=a,b\n"
                        "[a]\nSolvers.LearningRate=0.1\nSolvers.Decay=0.01\n"
                        "[b]\nSolvers.LearningRate=${LR}\n", env=(1, 2, 2))
    s = cells["c"].solvers["Weights"]
    assert s.learning_rate == 0.25 and s.decay == 0.01


def test_unknown_config_key_is_fatal_with_close_match():
    with pytest.raises(IniError) as info:
        build_cells(BASE + "ConfigSection=cfg\n[cfg]\nNoBais=1\n", env=(1, 2, 2))
    text = str(info.value)
    assert "[cfg]" in text and "NoBais" in text and "'NoBias'" in text


def test_bad_solver_key_in_config_names_full_key():
    with pytest.raises(IniError, match="Solvers.LearningRat"):
        build_cells(BASE + "ConfigSection=cfg\n[cfg]\nSolvers.LearningRat=0.1\n", env=(1, 2, 2))


def test_solvers_in_cell_section_need_selector():
    cells = build_cells(BASE + "Solvers.LearningRate=0.3\n", env=(1, 2, 2))
    assert cells["c"].solvers["Weights"].learning_rate == 0.01   # ignored, as N2D2 does
    assert any("no Solvers= in this section" in w for w in cells["c"].warnings)
    cells = build_cells(BASE + "Solvers=Adam\nSolvers.LearningRate=0.3\n", env=(1, 2, 2))
    s = cells["c"].weights[0].solver
    assert type(s).__name__.startswith("Adam") and s.learning_rate == 0.3


def test_unknown_cell_key_strict_only_without_section_readers():
    with pytest.raises(IniError, match="Kernnel"):
        build_cells(BASE + "Kernnel=3\n", env=(1, 2, 2))
    cells = build_cells(BASE + "Kernnel=3\nActivationFunction=Linear\n", env=(1, 2, 2))
    assert any("Kernnel" in w for w in cells["c"].warnings)   # silently accepted by N2D2
    text = "[p]\nInput=env\nType=Pool\nPoolSize=2\nNbOutputs=1\nPooling=Max\nFoo=1\n"
    assert any("Foo" in w for w in build_cells(text, env=(1, 4, 4))["p"].warnings)


def test_missing_required_key():
    with pytest.raises(IniError, match="KernelDims"):
        build_cells("[c]\nInput=env\nType=Conv\nNbOutputs=2\n", env=(1, 2, 2))
    with pytest.raises(IniError, match="Pooling"):
        build_cells("[p]\nInput=env\nType=Pool\nPoolDims=2 2\nNbOutputs=1\n", env=(1, 4, 4))


def test_fillers_and_activation_options():
    cells = build_cells(BASE + "WeightsFiller=ConstantFiller\nWeightsFiller.Value=0.5\n"
                        "BiasFiller=ConstantFiller\nBiasFiller.Value=-1\n"
                        "ActivationFunction=Rectifier\nActivationFunction.LeakSlope=0.1\n",
                        env=(3, 2, 2))
    c = cells["c"]
    assert (c.weights[0].data == 0.5).all() and (c.bias.data == -1).all()
    assert c.activation.leak_slope == pytest.approx(0.1)
    with pytest.raises(IniError, match="ActivationFunction.Slope"):
        build_cells(BASE + "ActivationFunction=Rectifier\nActivationFunction.Slope=1\n",
                    env=(1, 2, 2))


def test_qweight_and_qact_keys():
    text = (BASE + "ActivationFunction=Linear\nQWeight=SAT\nQWeight.Range=15\nQAct=SAT\n"
            "QAct.Alpha=6.0\nQActSolver=SGD\nQActSolver.LearningRate=0.05\nConfigSection=cfg\n"
            "[cfg]\nQWeight.ApplyScaling=1\n")
    c = build_cells(text, env=(1, 2, 2))["c"]
    assert c.qweight.range == 15 and c.qweight.apply_scaling
    assert c.qact.alpha == pytest.approx(6.0)
    quant = [p for p in c.parameters() if p.group == "quantizer"]
    assert len(quant) == 1 and quant[0].solver.learning_rate == 0.05
    # QAct without ActivationFunction is not read (N2D2)
    c = build_cells(BASE + "QAct=SAT\n", env=(1, 2, 2))["c"]
    assert c.qact is None and any("QAct" in w for w in c.warnings)


def test_cfg_file_in_cwd_overrides(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.cfg").write_text("# written by -cfg\nNoBias = 1\nSolvers.LearningRate = 0.7\n")
    c = build_cells(BASE + "ConfigSection=cfg\n[cfg]\nSolvers.LearningRate=0.1\n",
                    env=(1, 2, 2))["c"]
    assert c.no_bias and c.solvers["Weights"].learning_rate == 0.7


def test_dropout_parameter_only_from_config():
    text = "[d]\nInput=env\nType=Dropout\nNbOutputs=1\nDropout=0.2\n"
    d = build_cells(text, env=(1, 2, 2))["d"]
    assert d.dropout == 0.5
    assert d.warnings == ["ignored: Dropout=0.2 in [d] (N2D2 reads cell parameters only from a "
                          "ConfigSection)"]
    d = build_cells("[d]\nInput=env\nType=Dropout\nNbOutputs=1\nConfigSection=k\n[k]\nDropout=0.2\n",
                    env=(1, 2, 2))["d"]
    assert d.dropout == 0.2
