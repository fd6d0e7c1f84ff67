"""Data-parallel training against one process, with ranks as threads (``fake.ThreadGroup``):
the same code as under ``mpiexec`` (tests/distributed/test_mpi.py), without MPI.

* K replicas on the global batch == one process on that batch: parameters to 1e-6 relative
  (not bitwise: each replica sums its part of the batch, the allreduce adds the parts), the same
  validation and learning curves, the replicas bitwise equal to each other; both batch rules;
  Dropout (masks of the global batch), SyncBatchNorm (statistics of the global batch), LSQ's
  activation step (initialised from the global batch), per-replica BatchNorm statistics merged;
* data: a replica reads its slice of every batch, with the augmentations one process draws
  for it (in-memory chains and the streaming loader);
* a signal held by one replica stops all after the same step, rank 0 saves, ``-l`` resumes with
  another count; a NaN on one replica stops all with one agreed error; a last batch smaller than
  the replicas is left out; diverged replicas are detected.
"""
import io
import json
import signal

import numpy
import pytest
from fake import ThreadGroup, run_replicas
from tiny_nets import CONV_BN_SAT_12, CONV_FC_12, LENET_TEMPLATE, write_ini

from n2d2py import checkpoint
from n2d2py.deepnet import DeepNet
from n2d2py.distributed import data_parallel
from n2d2py.distributed.replicas import detach
from n2d2py.errors import InternalError, NumericalError

SEED = 3
LENET_BN = LENET_TEMPLATE.format(qweight="", qact="")
LENET_LSQ = LENET_TEMPLATE.format(qweight="", qact="QAct=LSQ\nQAct.Range=15")


def batch_of(text):
    return int(text.split("BatchSize=")[1].split()[0])


def with_batch(text, batch):
    return text.replace(f"BatchSize={batch_of(text)}", f"BatchSize={batch}")


def build(folder, text, comm=None, seed=SEED, **options):
    net = DeepNet.from_ini(write_ini(folder, text), seed=seed)
    if comm is not None:
        data_parallel(net, comm, **options)
    return net


def train(folder, text, comm=None, epochs=1, resume=None, **options):
    net = build(folder, text, comm, **options)
    history = net.learn(epochs=epochs, rng=numpy.random.default_rng([SEED, 1]), out=io.StringIO(),
                        workdir=str(folder), reload_best=False, resume=resume, seed=SEED)
    return net, history


def relative(a, b):
    return float(numpy.abs(a - b).max() / max(numpy.abs(a).max(), 1e-30))


def assert_replicas_equal(nets):
    for params in zip(*(net.parameters() for net in nets)):
        for p in params[1:]:
            assert numpy.array_equal(params[0].data, p.data), params[0].name
    for name in nets[0].cells:
        for s in nets[0].cells[name].state_names:
            for net in nets[1:]:
                assert numpy.array_equal(getattr(nets[0].cells[name], s), getattr(net.cells[name], s))


def assert_close(single, replica, tolerance):
    worst = max(relative(a.data, b.data) for a, b in zip(single.parameters(), replica.parameters()))
    assert worst < tolerance, worst
    return worst


def compare(tmp_path, text, size=2, tolerance=1e-6, **options):
    """One epoch of ``text`` by ``size`` replicas against one process on the global batch."""
    global_batch = options.get("global_batch", False)
    single_text = text if global_batch else with_batch(text, batch_of(text) * size)
    single, history = train(tmp_path / "single", single_text)
    runs = run_replicas(size, lambda comm: train(tmp_path / f"rank{comm.rank}", text, comm, **options))
    nets = [net for net, _ in runs]
    assert_replicas_equal(nets)
    worst = assert_close(single, nets[0], tolerance)
    for _, h in runs:
        assert h.validation == history.validation
        assert [(s, round(v, 12)) for s, v in h.learning] == \
            [(s, round(v, 12)) for s, v in history.learning]
        assert h.stimuli == history.stimuli
    return single, nets, worst


def test_two_replicas_learn_as_one_process_on_the_global_batch(tmp_path):
    single, nets, worst = compare(tmp_path, CONV_FC_12)
    assert worst > 0           # not bitwise: the batch sums are split (docs/DISTRIBUTED.md)
    # rank 0 wrote, rank 1 did not
    assert (tmp_path / "rank0" / "net_state" / "state.json").is_file()
    assert (tmp_path / "rank0" / "weights").is_dir()
    assert not (tmp_path / "rank1" / "net_state").exists() and not (tmp_path / "rank1" / "weights").exists()


def accumulating(text):
    """One process reading the replicas' parts one after the other, summing their gradients
    before each update (N2D2's IterationSize): the sums of K replicas, in the same order."""
    return text.replace("[common.config]\n", "[common.config]\nSolvers.IterationSize=2\n")


DROPOUT_NET = CONV_FC_12.replace("[fc]\nInput=conv1", "[drop]\nInput=conv1\nType=Dropout\n"
                                 "NbOutputs=4\n[fc]\nInput=drop").replace(
    "Solvers.Momentum=0.9", "Solvers.Momentum=0.9\nWeightsSolver.Decay=0.0005\nSolvers.Clamping=-1:1")


def test_two_replicas_are_one_process_accumulating_their_parts_bit_for_bit(tmp_path):
    # where the order of the additions is the same, the results are the same bits: the loss
    # scale 1/2 and the sum of two parts are exact; only the split of the batch sum differs
    # from one process on the whole batch
    assert "Type=Dropout" in DROPOUT_NET and "Decay" in DROPOUT_NET
    single, history = train(tmp_path / "single", accumulating(DROPOUT_NET))
    runs = run_replicas(2, lambda comm: train(tmp_path / f"rank{comm.rank}", DROPOUT_NET, comm))
    assert_replicas_equal([single] + [net for net, _ in runs])
    assert runs[0][1].validation == history.validation


def test_three_replicas_and_the_global_batch_rule(tmp_path):
    # BatchSize=16 is the global batch: parts of 6, 5, 5 (array_split), last batch 3200 % 16 = 0
    compare(tmp_path, CONV_FC_12, size=3, global_batch=True)


def test_dropout_masks_and_sync_batchnorm_with_a_sat_activation(tmp_path):
    # Dropout draws the global batch's masks; SyncBatchNorm normalises with its statistics.
    # conv1's bias is left out: BatchNorm cancels it, Adam then scales rounding noise into
    # full steps (any two runs that differ by one ulp drift apart there)
    text = CONV_BN_SAT_12.replace("ActivationFunction=Linear\nSolvers=Adam",
                                  "ActivationFunction=Linear\nConfigSection=conv.config\n"
                                  "Solvers=Adam") + "[conv.config]\nNoBias=1\n"
    assert "ConfigSection=conv.config" in text
    single, nets, _ = compare(tmp_path, text, sync_batchnorm=True, tolerance=1e-5)
    for name in ("mean", "variance"):
        assert relative(getattr(single.cells["bn1"], name), getattr(nets[0].cells["bn1"], name)) < 1e-5


def test_sync_batchnorm_step_matches_one_process_and_per_replica_statistics_merge(tmp_path):
    def steps(net, batches):
        for x, labels in batches:
            if net.replicas is not None:
                net.replicas.planned = len(labels) * 2 if x.shape[0] < len(labels) * 2 else None
            net.learn_batch(x, labels)
        return net

    single = build(tmp_path / "s", with_batch(LENET_BN, 64))
    data = [next(single.sp.batches("Learn", True, numpy.random.default_rng(k))) for k in range(3)]
    pairs = [(x, labels) for x, labels, _ in data]
    steps(single, pairs)

    def replica(comm, sync):
        net = build(tmp_path / f"r{comm.rank}{sync}", LENET_BN, comm, sync_batchnorm=sync)
        part = net.sp.shard.part(64)
        return steps(net, [(x[part], labels[part]) for x, labels in pairs])

    synced = run_replicas(2, lambda comm: replica(comm, True))
    assert_replicas_equal(synced)
    assert_close(single, synced[0], 1e-6)
    bn = single.cells["bn1"]
    assert relative(bn.mean, synced[0].cells["bn1"].mean) < 1e-6
    # per replica: each normalises with its own half, running statistics averaged (N2D2's
    # combined variance) so the replicas stay equal; not one process's numbers
    own = run_replicas(2, lambda comm: replica(comm, False))
    assert_replicas_equal(own)
    assert relative(bn.variance, own[0].cells["bn1"].variance) > 1e-4
    assert relative(bn.variance, own[0].cells["bn1"].variance) < 0.2


def test_lsq_activation_step_starts_from_the_global_batch(tmp_path):
    # one step (quantization is discontinuous: over an epoch, one rounding decided the other
    # way by a last-bit difference sends two runs apart, one process against itself included)
    single = build(tmp_path / "s", with_batch(LENET_LSQ, 64))
    x, labels, _ = next(single.sp.batches("Learn", True, numpy.random.default_rng(2)))
    quantizer = single.quantizers()[0]
    single.learn_batch(x, labels)

    def replica(comm):
        net = build(tmp_path / f"r{comm.rank}", LENET_LSQ, comm, sync_batchnorm=True)
        part = net.sp.shard.part(64)
        net.replicas.planned = 64
        net.learn_batch(x[part], labels[part])
        return net

    nets = run_replicas(2, replica)
    assert_replicas_equal(nets)
    assert_close(single, nets[0], 1e-6)
    assert quantizer.step_size == pytest.approx(nets[0].quantizers()[0].step_size, rel=1e-6)


def test_a_replica_reads_its_slice_with_one_process_augmentations(tmp_path):
    # in memory, with random crops and flips drawn at batch time
    text = with_batch(CONV_FC_12, 10).replace(
        "[sp.Transformation]",
        "[sp.OnTheFlyTransformation-flip]\nType=FlipTransformation\nRandomHorizontalFlip=1\n"
        "[sp.Transformation]")
    single = build(tmp_path / "s", text)
    whole = list(single.sp.batches("Validation", True, numpy.random.default_rng(4), limit=25))
    group = ThreadGroup(3)
    parts = []
    for rank in range(3):
        net = build(tmp_path / f"r{rank}", text)
        net.sp.shard = __import__("n2d2py.distributed", fromlist=["Shard"]).Shard(rank, 3)
        parts.append(list(net.sp.batches("Validation", True, numpy.random.default_rng(4), limit=25)))
    assert group.size == 3
    for k, (x, labels, ids) in enumerate(whole):
        joined = [numpy.concatenate([p[k][j] for p in parts]) for j in range(3)]
        assert x.tobytes() == joined[0].tobytes()
        numpy.testing.assert_array_equal(labels, joined[1])
        numpy.testing.assert_array_equal(ids, joined[2])
    assert [len(p[-1][1]) for p in parts] == [2, 2, 1]        # last batch of 5 over 3 ranks


def test_streaming_loader_slices_keep_each_stimulus_key(tmp_path):
    from image_folders import imagenet_ini, make_ilsvrc

    from n2d2py.data import StimuliProvider, database_from_ini, loader
    from n2d2py.distributed import Shard
    from n2d2py.ini import parse_ini_text
    make_ilsvrc(tmp_path, per_class=5)

    def provider():
        document = parse_ini_text(imagenet_ini(tmp_path))
        db = database_from_ini(document, rng=numpy.random.default_rng(1))
        return StimuliProvider.from_ini(document, db, numpy.random.default_rng(1))

    try:
        sp = provider()
        sp.workers = 0
        whole = list(sp.batches("Learn", True, numpy.random.default_rng(5)))
        parts = []
        for rank, workers in ((0, 0), (1, 2)):          # in-process and worker pool paths
            sp = provider()
            sp.workers, sp.shard = workers, Shard(rank, 2)
            parts.append(list(sp.batches("Learn", True, numpy.random.default_rng(5))))
        for k, (x, labels, ids) in enumerate(whole):
            assert x.tobytes() == numpy.concatenate([parts[0][k][0], parts[1][k][0]]).tobytes()
            numpy.testing.assert_array_equal(ids, numpy.concatenate([parts[0][k][2], parts[1][k][2]]))
    finally:
        loader.close_all()


def test_validation_and_test_passes_are_reduced(tmp_path):
    single = build(tmp_path / "s", CONV_FC_12)
    expected = single.test(set_name="Validation", limit=203)

    def replica(comm):
        net = build(tmp_path / f"r{comm.rank}", CONV_FC_12, comm, global_batch=True)
        return net.test(set_name="Validation", limit=203), net.targets[0]

    results = run_replicas(2, replica)
    target = single.targets[0]
    for result, t in results:
        assert result.nb_stimuli == 203 and result.correct == expected.correct
        numpy.testing.assert_array_equal(t.confusion, target.confusion)
        assert t.batch_success == pytest.approx(target.batch_success, abs=1e-15)


def test_a_signal_held_by_one_replica_stops_all_after_the_same_step(tmp_path, monkeypatch):
    import threading

    from n2d2py import signals
    from n2d2py.distributed import replicas as module
    steps = {}
    real = module.DataParallel.reduce

    def reduce(self, params, loss, part):
        steps[self.comm.rank] = steps.get(self.comm.rank, 0) + 1
        return real(self, params, loss, part)

    monkeypatch.setattr(module.DataParallel, "reduce", reduce)
    monkeypatch.setattr(signals, "held", lambda: (signal.SIGINT,) if
                        threading.current_thread().name.endswith("rank1") and
                        steps.get(1, 0) >= 7 else ())

    def replica(comm):
        threading.current_thread().name = f"rank{comm.rank}"
        try:
            train(tmp_path / f"r{comm.rank}", CONV_FC_12, comm, epochs=2)
        except KeyboardInterrupt:
            return "interrupted"
        return "finished"

    assert run_replicas(2, replica) == ["interrupted", "interrupted"]
    assert steps == {0: 7, 1: 7}          # held during the 7th step: both stop after it
    saved = checkpoint.load(tmp_path / "r0" / "net_state")
    assert saved.meta["progress"]["steps"] == 7 and saved.meta["progress"]["plan"]["next"] == 7
    assert not (tmp_path / "r1" / "net_state").exists()
    # -l with another count: one process (global batch 32 == 2 x 16) then three replicas
    monkeypatch.setattr(signals, "held", lambda: ())
    net, history = train(tmp_path / "r0", with_batch(CONV_FC_12, 32), epochs=1, resume=saved)
    assert history.stimuli == 3200
    saved = checkpoint.load(tmp_path / "r0" / "net_state")
    results = run_replicas(3, lambda comm: train(tmp_path / ("r0" if comm.rank == 0 else f"x{comm.rank}"),
                                                 CONV_FC_12, comm, epochs=2, resume=saved,
                                                 global_batch=True))
    assert all(h.stimuli == 6400 for _, h in results)
    assert_replicas_equal([n for n, _ in results])


def test_a_nan_on_one_replica_stops_every_replica_at_the_same_step(tmp_path):
    def replica(comm):
        net = build(tmp_path / f"r{comm.rank}", CONV_FC_12, comm)
        real = net.forward

        def forward(x, training=False, keep=None):
            if training and comm.rank == 1 and net.replicas.seconds["steps"] == 4:
                x = x.data.copy() if hasattr(x, "data") else x.copy()
                x[0, 0, 0, 0] = numpy.nan
            return real(x, training, keep)
        net.forward = forward
        try:
            net.learn(epochs=1, rng=numpy.random.default_rng(1), out=io.StringIO(),
                      workdir=str(tmp_path / f"r{comm.rank}"), reload_best=False)
        except NumericalError as exc:
            return exc.agreed, str(exc)

    (agreed0, line0), (agreed1, line1) = run_replicas(2, replica)
    assert agreed0 and agreed1 and "batch 5 (step 5)" in line0 and "batch 5 (step 5)" in line1
    state = json.loads((tmp_path / "r0" / "net_state" / "state.json").read_text())
    assert state["progress"]["steps"] == 4


def test_a_last_batch_smaller_than_the_replicas_is_left_out(tmp_path):
    # 3200 Learn stimuli, global batch 3 x 13 = 39: 82 batches and 2 left over
    out = io.StringIO()

    def replica(comm):
        net = build(tmp_path / f"r{comm.rank}", with_batch(CONV_FC_12, 13), comm)
        return net.learn(epochs=1, rng=numpy.random.default_rng(1), out=out if comm.rank == 0
                         else io.StringIO(), workdir=str(tmp_path / f"r{comm.rank}"), reload_best=False)

    histories = run_replicas(3, replica)
    assert all(h.stimuli == 3198 for h in histories)
    assert "the last batch of 2 image(s) is left out" in out.getvalue()


def test_bucket_slices_give_the_same_sums_and_diverged_replicas_are_found(tmp_path):
    whole = run_replicas(2, lambda comm: train(tmp_path / f"a{comm.rank}", CONV_FC_12, comm)[0])
    sliced = run_replicas(2, lambda comm: train(tmp_path / f"b{comm.rank}", CONV_FC_12, comm,
                                                bucket_bytes=1000)[0])
    assert_replicas_equal([whole[0], sliced[0], sliced[1]])

    def diverged(comm):
        net = build(tmp_path / f"c{comm.rank}", CONV_FC_12, comm)
        if comm.rank == 1:
            net.parameters()[0].data[0, 0, 0, 0] += 1.0
        with pytest.raises(InternalError, match="the replicas' parameters differ"):
            net.replicas.check_identical()
        detach(net)
        return net.sp.batch_size, net.sp.shard, net.replicas

    assert run_replicas(2, diverged) == [(16, None, None)] * 2


def test_learn_n_stimuli_drawn_with_replacement_as_one_process(tmp_path):
    def run(folder, text, comm=None):
        net = build(folder, text, comm)
        history = net.learn(stimuli=1000, log=400, rng=numpy.random.default_rng(9),
                            out=io.StringIO(), workdir=str(folder), reload_best=False)
        return net, history

    single, history = run(tmp_path / "s", with_batch(CONV_FC_12, 32))
    runs = run_replicas(2, lambda comm: run(tmp_path / f"r{comm.rank}", CONV_FC_12, comm))
    assert_replicas_equal([n for n, _ in runs])
    assert_close(single, runs[0][0], 1e-6)
    assert runs[0][1].validation == history.validation and len(history.validation) == 3
    assert runs[0][1].stimuli == history.stimuli == 1000
