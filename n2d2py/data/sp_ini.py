"""Reading a StimuliProvider from the INI: ``[sp]``/``[env]`` keys, its ConfigSection, and the
``sp.*`` sub-sections in file order (as in N2D2: not in the order of the numbers in their names).

Unknown keys in ``[sp]``, in its ConfigSection and in transformation / StimuliData sections are
fatal, as in N2D2 (docs/INI.md §10). ``sp.StimuliData*`` computes its statistics as soon as it is
met, so later sections can read ``[sp.StimuliData-x]_GlobalValue.mean`` (models/cifar-10.ini).
"""
import sys

import numpy

from ..ini.convert import list_of, to_bool, to_float, to_str, to_uint, to_word
from .database import expand_env
from .transformation import APPLY_TO, transformation_from_section

SP_KEYS = {"Size", "SizeX", "SizeY", "SizeD", "NbChannels", "BatchSize", "CompositeStimuli",
           "CachePath", "ConfigSection"}
# n2d2py's streaming loader (data/loader.py); N2D2 does not know these keys
LOADER_KEYS = {"Workers": to_uint, "Prefetch": to_uint, "SkipBadImages": to_bool}
# keys N2D2 reads for spiking or target-tensor setups: accepted, without effect in n2d2py
SPIKING_KEYS = {"StimulusType", "DiscardedLateStimuli", "PeriodMeanMin", "PeriodMeanMax",
                "PeriodRelStdDev", "PeriodMin", "PeriodMax", "PeriodRelStdDevMin"}
IGNORED_KEYS = SPIKING_KEYS | {"TargetSize", "TargetSizeX", "TargetSizeY", "TargetSizeD",
                               "TargetNbChannels"}
CONFIG_KEYS = {"DataSignedMapping": to_bool, "QuantizationLevels": to_uint,
               "QuantizationMin": to_float, "QuantizationMax": to_float,
               "StreamTensor": to_bool, "StreamLabel": to_bool}
STIMULI_DATA_KEYS = {"ApplyTo", "LogSizeRange", "LogValueRange", "MeanData", "StdDevData"}
STATS_CHUNK = 2048

# sub-section name prefixes, longest first so "ChannelsOnTheFly..." is not taken for "Channel..."
KINDS = [("ChannelsOnTheFlyTransformation", "all", True), ("ChannelsTransformation", "all", False),
         ("ChannelOnTheFlyTransformation", "channel", True), ("ChannelTransformation", "channel", False),
         ("OnTheFlyTransformation", None, True), ("Transformation", None, False)]


def sp_section(document):
    for name in ("sp", "env"):
        if name in document:
            return document.section(name)
    return document.section("sp")     # raises IniError "no section [sp]" with close matches


def read_size(section):
    """(C, H, W) from ``Size`` (X Y [D] C) or ``SizeX``/``SizeY``/``NbChannels``."""
    if "Size" in section:
        dims = section.get_as("Size", list_of(to_uint))
        if len(dims) not in (2, 3, 4) or (len(dims) == 4 and dims[2] != 1):
            raise section.error(f"Size must be 'X Y [C]' (depth 1), got {dims}", key="Size")
        return (dims[-1] if len(dims) > 2 else 1), dims[1], dims[0]
    if "SizeD" in section and section.get_as("SizeD", to_uint) != 1:
        raise section.error("3-D stimuli (SizeD > 1) are not supported by n2d2py", key="SizeD")
    return (section.get_as("NbChannels", to_uint, 1), section.get_as("SizeY", to_uint),
            section.get_as("SizeX", to_uint))


def read_config(document, section):
    """Keys of the sp ConfigSection (one name: N2D2 takes no list here)."""
    name = section.get_as("ConfigSection", to_word, None)
    if name is None:
        return {}
    config = document.section(name)
    values = {}
    for key in config.keys():
        if section.name == "env" and key in SPIKING_KEYS:
            config.get(key)          # [env] spike-coding parameters: accepted, no effect here
            continue
        if key not in CONFIG_KEYS:
            raise config.error(f"unknown StimuliProvider parameter '{key}' (known: "
                               f"{', '.join(CONFIG_KEYS)})", key=key)
        values[key] = config.get_as(key, CONFIG_KEYS[key])
    return values


def check_sp_keys(section):
    for key in section.keys():
        if key.startswith("_"):
            continue
        if key in IGNORED_KEYS:
            section.get(key)
        elif key not in SP_KEYS and key not in LOADER_KEYS:
            raise section.error(f"unknown key '{key}' in [{section.name}] (known: "
                                f"{', '.join(sorted(SP_KEYS | set(LOADER_KEYS)))})", key=key)


def provider_from_ini(cls, document, database, rng=None):
    section = sp_section(document)
    check_sp_keys(section)
    if section.get_as("CompositeStimuli", to_bool, False):
        raise section.error("CompositeStimuli=1 (pixel-wise labels) is not supported by n2d2py",
                            key="CompositeStimuli")
    expand_env(section.get_as("CachePath", to_str, ""))   # read (static results are cached in memory)
    config = read_config(document, section)
    batch_size = section.get_as("BatchSize", to_uint, 1)
    if batch_size < 1:
        raise section.error("BatchSize must be at least 1", key="BatchSize")
    provider = cls(database, read_size(section), batch_size, rng,
                   name=section.name, section=section,
                   data_signed_mapping=config.get("DataSignedMapping", False),
                   quantization_levels=config.get("QuantizationLevels", 0),
                   quantization_min=config.get("QuantizationMin", 0.0),
                   quantization_max=config.get("QuantizationMax", 1.0))
    provider.workers = section.get_as("Workers", to_uint, None)
    provider.prefetch = section.get_as("Prefetch", to_uint, provider.prefetch)
    if provider.prefetch < 1:
        raise section.error("Prefetch must be at least 1 (batches decoded ahead)", key="Prefetch")
    provider.skip_bad_images = section.get_as("SkipBadImages", to_bool, False)
    new_channels = 0
    for sub in document.matching(section.name + ".*"):
        new_channels += add_sub_section(provider, sub, sub.name[len(section.name) + 1:])
    if new_channels:   # N2D2: the channel count is the number of new channel pipelines
        provider.size = (new_channels,) + provider.size[1:]
    section.set("_EpochSize", provider.epoch_size)
    return provider


def add_sub_section(provider, sub, tail):
    """Apply one ``sp.<tail>`` section; returns 1 when it started a new channel pipeline."""
    if tail.startswith("StimuliData"):
        stimuli_data(provider, sub)
        return 0
    for prefix, channel_kind, on_the_fly in KINDS:
        if tail.startswith(prefix):
            transformation = transformation_from_section(sub)
            if channel_kind is None:
                provider.add_transformation(transformation, on_the_fly)
                return 0
            if channel_kind == "all":
                provider.add_channel_transformation(transformation, "all", on_the_fly)
                return 0
            channel = sub.get_as("Channel", to_uint, None)
            provider.add_channel_transformation(transformation, channel, on_the_fly)
            return int(channel is None)
    if "Transformation" in tail:
        raise sub.error(f"Unknown StimuliProvider type for section [{sub.name}] (expected "
                        f"{', '.join(p for p, _, _ in KINDS)} or StimuliData)")
    if tail == "Adversarial":
        print(f"Warning: [{sub.name}] (adversarial attacks) is ignored by n2d2py", file=sys.stderr)
    return 0


def stimuli_data(provider, sub):
    """``sp.StimuliData*``: min, max, mean and (population) std over every pixel and channel of
    the stimuli of ``ApplyTo``, after the transformations declared so far, without the implicit
    normalisation (raw 0..255 if none). Written as ``_GlobalValue.*`` into the section."""
    for key in sub.keys():
        if key not in STIMULI_DATA_KEYS and not key.startswith("_"):
            raise sub.error(f"unknown StimuliData parameter '{key}' (known: "
                            f"{', '.join(sorted(STIMULI_DATA_KEYS))})", key=key)
    apply_to = sub.get("ApplyTo", "All").strip()
    if apply_to not in APPLY_TO:
        raise sub.error(f"expected one of {', '.join(APPLY_TO)}, got {apply_to!r}", key="ApplyTo")
    for key in ("LogSizeRange", "LogValueRange", "StdDevData"):
        sub.get_as(key, to_bool, False)
    if sub.get_as("MeanData", to_bool, False):
        raise sub.error("MeanData=1 (mean image file) is not supported by n2d2py", key="MeanData")
    if provider.database is None:   # shapes-only build (no data read): neutral placeholders
        for key, value in (("minVal", 0.0), ("maxVal", 1.0), ("mean", 0.0), ("stdDev", 1.0)):
            sub.set(f"_GlobalValue.{key}", repr(value))
        return
    rng = numpy.random.default_rng(0)
    histogram = numpy.zeros(256, numpy.int64)      # exact and fast for 8-bit stimuli
    count, total, squares = 0, 0.0, 0.0
    low, high = numpy.inf, -numpy.inf
    for name in APPLY_TO[apply_to]:
        n = provider.nb_stimuli(name)
        for start in range(0, n, STATS_CHUNK):
            batch = provider.transform(name, numpy.arange(start, min(n, start + STATS_CHUNK)),
                                       rng, normalise=False)
            if isinstance(batch, numpy.ndarray) and batch.dtype == numpy.uint8:
                histogram += numpy.bincount(batch.ravel(), minlength=256)
                continue
            values = numpy.concatenate([numpy.ravel(im) for im in batch]).astype(numpy.float64)
            count += values.size
            total += values.sum()
            squares += numpy.square(values).sum()
            low, high = min(low, values.min(initial=numpy.inf)), max(high, values.max(initial=-numpy.inf))
    if histogram.any():
        levels = numpy.arange(256, dtype=numpy.float64)
        count += int(histogram.sum())
        total += float(histogram @ levels)
        squares += float(histogram @ levels ** 2)
        present = numpy.flatnonzero(histogram)
        low, high = min(low, present[0]), max(high, present[-1])
    if count == 0:
        raise sub.error(f"no stimulus in the {apply_to} set(s) to compute statistics on")
    mean = total / count
    std = float(numpy.sqrt(max(0.0, squares / count - mean * mean)))
    for key, value in (("minVal", low), ("maxVal", high), ("mean", mean), ("stdDev", std)):
        sub.set(f"_GlobalValue.{key}", repr(float(value)))
