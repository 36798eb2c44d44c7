"""study.models and study.paper: shapes, gradients, counts against Tables 2-4, input errors."""
from __future__ import annotations

import csv
import io

import pytest
import torch

from study import paper
from study.cli import main as study_main
from study.config import AudioConfig, ModelConfig, preset_config
from study.models import (GBT, MODEL_NAMES, MODELS, build_model, check_model_name, count_params, count_table,
                          describe, param_breakdown, row_model)
from study.models.blocks import BN_EPS, BN_MOMENTUM, LogMelMemo, ScalarBatchNorm, remembering_logmels, trace_time

N_TAGS = 7
TINY = {"frontend_multiplier": 0.125, "backend_filters": 16, "dense_units": 12}  # fast CPU versions of the paper models
THREE_S, FIFTEEN_S, ODD = 48_000, 240_000, 50_001


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def tiny(model: str, **overrides) -> torch.nn.Module:
    return build_model(ModelConfig(model=model, **{**TINY, **overrides}), n_tags=N_TAGS)


def on_meta(model: str, n_tags: int = 50, **overrides) -> torch.nn.Module:
    """Shapes and counts without allocating weights."""
    with torch.device("meta"):
        return build_model(ModelConfig(model=model, **overrides), n_tags=n_tags)


# ---- registry -------------------------------------------------------------------------------------
def test_registry_names_and_unknown_model() -> None:
    assert set(MODELS) == {"waveform", "spectrogram", "samplecnn", "dieleman", "vgg", "timbre_cnn",
                           "musicnn", "musicnn_vgg"}
    with pytest.raises(ValueError, match="unknown model 'cnn'.*waveform"):
        build_model(ModelConfig(model="cnn"), n_tags=3)


def test_the_registry_knows_every_model_a_config_names_and_refuses_the_gbt_as_a_network() -> None:
    assert MODEL_NAMES == (*MODELS, GBT)
    assert {preset_config(p).model.model for p in ("smoke", "default", "paper")} | {ModelConfig().model} <= set(MODELS)
    check_model_name(GBT)  # a model a config may name
    with pytest.raises(ValueError, match="not a network.*study gbt"):
        build_model(ModelConfig(model=GBT), n_tags=3)


def test_multiplier_too_small_names_the_value() -> None:
    with pytest.raises(ValueError, match="frontend_multiplier 0.01"):
        build_model(ModelConfig(model="spectrogram", frontend_multiplier=0.01), n_tags=3)


# ---- shapes ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("model", ["waveform", "spectrogram"])
@pytest.mark.parametrize("samples", [THREE_S, FIFTEEN_S, ODD])
def test_paper_models_output_logits_for_any_length(model: str, samples: int) -> None:
    net = tiny(model).eval()
    audio = torch.randn(2, samples)
    with torch.no_grad():
        logits, embedding = net(audio), net.embed(audio)
    assert logits.shape == (2, N_TAGS) and logits.dtype == torch.float32
    assert embedding.shape == (2, TINY["dense_units"])
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("model, samples", [("waveform", THREE_S), ("waveform", FIFTEEN_S), ("waveform", ODD),
                                            ("spectrogram", THREE_S), ("spectrogram", ODD)])
def test_time_arithmetic_matches_the_real_front_end(model: str, samples: int) -> None:
    net = tiny(model).eval()
    audio = torch.randn(1, samples)
    with torch.no_grad():
        x = net.input_stage(audio) if net.input_stage is not None else audio
        features = net.frontend(x)  # (batch, M', time)
    n_ops = len(net.time_ops) - len(net.backend.time_ops)
    assert features.shape[1] == net.frontend.out_features
    assert features.shape[2] == trace_time(net.time_ops[:n_ops], samples)[-1][1]


def test_waveform_time_steps_and_smallest_inputs() -> None:
    """docs/paper-details.md, "Waveform front-end": 3 s -> 20 steps, 15 s -> 108 (7 layers) / 11 (9 layers);
    minima 19,680 and 177,144."""
    seven, nine = on_meta("waveform"), on_meta("waveform", waveform_layers=9)
    frontend_steps = lambda net, n: trace_time(net.frontend.time_ops, n)[-1][1]  # noqa: E731
    assert (frontend_steps(seven, THREE_S), frontend_steps(seven, FIFTEEN_S)) == (20, 108)
    assert frontend_steps(nine, FIFTEEN_S) == 11
    assert (seven.min_samples, nine.min_samples) == (19_680, 177_144)
    assert on_meta("spectrogram").min_samples == 7 * 256  # 1 + n // 256 = 8 frames for the back-end


@pytest.mark.parametrize("model", ["waveform", "spectrogram"])
def test_smallest_input_is_accepted_and_one_less_is_refused(model: str) -> None:
    net = tiny(model).eval()
    with torch.no_grad():
        assert net(torch.randn(2, net.min_samples)).shape == (2, N_TAGS)
    with pytest.raises(ValueError, match=f"needs at least {net.min_samples} samples"):
        net(torch.randn(2, net.min_samples - 1))


def test_nine_layer_waveform_refuses_three_seconds() -> None:
    net = tiny("waveform", waveform_layers=9)
    with pytest.raises(ValueError, match="177144"):
        net(torch.randn(2, THREE_S))


@pytest.mark.parametrize("model, samples, embedding", [("samplecnn", 59_049, 512), ("vgg", THREE_S, 128),
                                                       ("timbre_cnn", THREE_S, 100), ("dieleman", THREE_S, 100)])
def test_baselines_take_their_fixed_length(model: str, samples: int, embedding: int) -> None:
    net = build_model(ModelConfig(model=model), n_tags=N_TAGS).eval()
    assert net.fixed_samples == net.min_samples == samples
    with torch.no_grad():
        assert net(torch.randn(1, samples)).shape == (1, N_TAGS)
        assert net.embed(torch.randn(1, samples)).shape == (1, embedding)
    with pytest.raises(ValueError, match=f"exactly {samples} samples"):
        net(torch.randn(1, samples + 1))


# ---- gradients ----------------------------------------------------------------------------------------
def _assert_every_parameter_learns(net: torch.nn.Module, samples: int) -> None:
    net.train()
    net(torch.randn(3, samples)).pow(2).mean().backward()
    dead = [name for name, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not dead, f"parameters without gradient: {dead}"


@pytest.mark.parametrize("model", ["waveform", "spectrogram"])
def test_gradients_reach_every_parameter_of_the_paper_models(model: str) -> None:
    _assert_every_parameter_learns(tiny(model), THREE_S)


@pytest.mark.parametrize("model", ["vgg", "timbre_cnn", "dieleman"])
def test_gradients_reach_every_parameter_of_the_baselines(model: str) -> None:
    net = build_model(ModelConfig(model=model), n_tags=N_TAGS, audio_cfg=AudioConfig(n_mels=64))  # 64 bands: faster
    _assert_every_parameter_learns(net, net.fixed_samples)


@pytest.mark.slow
def test_gradients_reach_every_parameter_of_samplecnn() -> None:
    net = build_model(ModelConfig(model="samplecnn"), n_tags=N_TAGS)
    _assert_every_parameter_learns(net, net.fixed_samples)


# ---- input errors ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("model", ["waveform", "spectrogram"])
def test_clear_errors_for_bad_input(model: str) -> None:
    net = tiny(model)
    with pytest.raises(ValueError, match=r"\(batch, samples\).*\(48000,\)"):
        net(torch.randn(THREE_S))
    with pytest.raises(ValueError, match=r"\(batch, samples\)"):
        net(torch.randn(2, 1, THREE_S))
    with pytest.raises(ValueError, match=f"1000 samples is too short.*at least {net.min_samples}"):
        net(torch.randn(2, 1000))
    audio = torch.randn(2, THREE_S)
    audio[1, 123] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        net(audio)
    audio[1, 123] = float("inf")
    with pytest.raises(ValueError, match="infinite"):
        net.embed(audio)


# ---- input statistics, initialisation, devices --------------------------------------------------------
def test_fit_input_stats_standardises_the_log_mel() -> None:
    net = tiny("spectrogram")
    clips = [0.5 * torch.randn(THREE_S), 0.1 * torch.randn(2, 20_000)]
    net.fit_input_stats(iter(clips))
    standardised = torch.cat([net.input_stage(c.reshape(-1, c.shape[-1])).flatten() for c in clips])
    assert abs(float(standardised.mean())) < 1e-4 and abs(float(standardised.std(unbiased=False)) - 1) < 1e-4
    state = net.state_dict()
    assert float(state["input_stage.input_std"]) != 1.0  # stored with the model
    fresh = tiny("spectrogram")
    fresh.load_state_dict(state)
    assert float(fresh.input_stage.input_mean) == float(net.input_stage.input_mean)
    with pytest.raises(ValueError, match="no waveforms"):
        fresh.fit_input_stats([])


def test_a_repeated_scoring_pass_reads_its_log_mels_from_the_memo_and_scores_the_same_bit_for_bit() -> None:
    net = tiny("spectrogram").eval()
    batches = [torch.randn(3, THREE_S), torch.randn(2, THREE_S)]
    with torch.inference_mode():
        plain = [net(batch) for batch in batches]
        memo = LogMelMemo()
        for _ in range(3):  # three epochs' validation passes
            with remembering_logmels(net, memo):
                assert all(torch.equal(net(batch), expected) for batch, expected in zip(batches, plain))
        assert memo.hits == 2 * len(batches) and len(memo.entries) == len(batches)
        other = torch.randn(3, THREE_S)
        expected = net(other)
        with remembering_logmels(net, memo):  # another batch at the first position: computed, not read...
            assert torch.equal(net(other), expected)
        assert memo.hits == 2 * len(batches)
        with remembering_logmels(net, memo):  # ...and stored in its place
            assert torch.equal(net(other), expected)
        assert memo.hits == 2 * len(batches) + 1
        full = LogMelMemo(limit_bytes=0)  # nothing kept past the limit: every pass computes, the same scores
        for _ in range(2):
            with remembering_logmels(net, full):
                assert torch.equal(net(batches[0]), plain[0])
        assert full.hits == 0 and not full.entries
    with remembering_logmels(net, memo):  # with gradients (training) the memo is not used
        net(other)
    assert memo.hits == 2 * len(batches) + 1 and net.input_stage.memo is None  # and it is unset after the block


def test_fit_input_stats_is_a_no_op_for_waveform_models() -> None:
    net = tiny("waveform")
    before = {k: v.clone() for k, v in net.state_dict().items()}
    net.fit_input_stats([torch.randn(THREE_S)])
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_tf_style_initialisation_and_batch_norm_settings() -> None:
    net = tiny("waveform", backend_filters=128)
    kernel = net.backend.conv2.conv.weight.detach()  # 128 x 128 x 7
    he_std = (2.0 / (128 * 7)) ** 0.5
    assert abs(float(kernel.std()) / he_std - 1) < 0.05
    assert float(kernel.abs().max()) <= 2 * (1.3 * 2.0 / (128 * 7)) ** 0.5  # truncated at 2 std, as TF1
    assert all(float(m.bias.detach().abs().max()) == 0 for m in net.modules() if isinstance(m, (torch.nn.Conv1d, torch.nn.Linear)))
    norms = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert norms and all(m.momentum == BN_MOMENTUM == 0.01 and m.eps == BN_EPS == 1e-3 for m in norms)


def test_autocast_and_dtype_moves_keep_buffers_with_the_model() -> None:
    net = tiny("spectrogram").eval()
    audio = torch.randn(2, THREE_S)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        logits = net(audio)
    assert logits.shape == (2, N_TAGS) and torch.isfinite(logits.float()).all()
    net = net.to(torch.float64)  # buffers (window, filterbank, input mean/std) move like parameters
    assert net.input_stage.logmel.filterbank.dtype == torch.float64
    assert net.input_stage.input_std.dtype == torch.float64


# ---- the spectrogram front-end's design ----------------------------------------------------------------
def test_spectrogram_front_end_widths_and_pitch_invariance() -> None:
    net = tiny("spectrogram", frontend_multiplier=1.0).eval()
    frontend = net.frontend
    assert frontend.out_features == 29 * 16 == 464
    image = torch.zeros(1, 96, 40)  # (batch, mels, frames)
    image[0, 40:46, 15:20] = 1.0
    shifted = torch.roll(image, 5, dims=1)  # the same timbre, five mel bins higher
    with torch.no_grad():
        for branch in frontend.timbral:
            if branch.height == 38:  # the blob stays inside every 38-bin filter position
                torch.testing.assert_close(branch(image), branch(shifted))
        # the temporal branch sees only the energy envelope: permuting bins changes nothing
        logmel = torch.randn(1, 200, 96)
        permuted = logmel[:, :, torch.randperm(96)]
        out, out_permuted = frontend(logmel), frontend(permuted)
    timbral_channels = 16 * (1 + 2 + 4) * 2
    torch.testing.assert_close(out[:, timbral_channels:], out_permuted[:, timbral_channels:], rtol=1e-4, atol=1e-4)


# ---- parameter counts (Tables 2-4, §5.1) -------------------------------------------------------------
def test_anchor_counts_of_the_parameter_count_notes() -> None:
    waveform = on_meta("waveform")
    spectrogram = on_meta("spectrogram", frontend_multiplier=0.5, backend_filters=64, dense_units=200)
    assert count_params(waveform) == 5_377_082
    assert count_params(spectrogram) == 222_878
    assert count_params(waveform.frontend) == 248_448
    assert count_params(on_meta("spectrogram").frontend) == 50_048
    assert [count_params(on_meta(name)) for name in ("vgg", "samplecnn", "timbre_cnn", "dieleman")] == [
        450_932, 2_394_162, 185_856, 66_784]


def test_back_end_conv2_conv3_use_one_scalar_batch_norm() -> None:
    backend = on_meta("waveform").backend
    for conv in (backend.conv2, backend.conv3):
        assert isinstance(conv.norm, ScalarBatchNorm) and count_params(conv.norm) == 2
    assert count_params(backend.conv1.norm) == 2 * 512


@pytest.mark.parametrize("model", ["waveform", "spectrogram", "dieleman"])
def test_sync_batchnorm_conversion_keeps_weights_and_the_plain_path_computes_the_same(model: str) -> None:
    """torchrun's sync_batchnorm converts every batch norm, the scalar one's too; a converted model takes
    the plain (not the fused CPU) path, keeps its state dict and, in eval mode, its outputs."""
    net = tiny(model).eval()
    audio = torch.randn(2, net.fixed_samples or THREE_S)
    with torch.no_grad():
        expected = net(audio)
    state = {name: tensor.clone() for name, tensor in net.state_dict().items()}
    synced = torch.nn.SyncBatchNorm.convert_sync_batchnorm(net)
    norms = [m for m in synced.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert norms and all(isinstance(m, torch.nn.SyncBatchNorm) for m in norms)
    scalar = [m for m in synced.modules() if isinstance(m, ScalarBatchNorm)]
    assert scalar and all(isinstance(m.norm, torch.nn.SyncBatchNorm) for m in scalar)
    assert synced.state_dict().keys() == state.keys()
    assert all(torch.equal(synced.state_dict()[name], tensor) for name, tensor in state.items())
    with torch.no_grad():
        torch.testing.assert_close(synced(audio), expected, rtol=1e-4, atol=1e-4)


def test_baselines_flatten_the_same_map_at_187_and_188_frames() -> None:
    """The baselines are counted at 187 frames (docs/paper-details.md); a centred STFT of 48,000 samples gives 188."""
    for name in ("vgg", "timbre_cnn", "dieleman"):
        net = on_meta(name)
        ops = net.time_ops[1:]  # after the STFT
        assert trace_time(ops, 187)[-1][1] == trace_time(ops, 188)[-1][1] >= 1


COUNTED = [row for row in paper.rows() if row["params"] is not None]


@pytest.mark.parametrize("row", COUNTED, ids=[f"T{r['table']}-{r['row']}" for r in COUNTED])
def test_our_count_agrees_with_the_printed_figure(row: dict) -> None:
    model = row_model(row)
    if model is None:
        assert row["note"].startswith("not built"), f"{row['row']}: no model and no reason"
        return
    count = count_params(model)
    truncated = paper.printed_agrees(count, row["params"])
    if not row["note"]:
        assert truncated, f"{row['row']}: ours {count:,} does not print as {row['params']}"
        return
    assert not truncated, f"{row['row']}: now meets {row['params']}; drop the stale note"
    assert f"{count:,}" in row["note"], "the note must show our count's arithmetic"
    if row["note"].startswith("met when rounded"):
        assert paper.printed_agrees(count, row["params"], reading="rounded")
    else:
        assert row["note"].startswith("unmet")


def test_every_table_2_and_3_row_of_ours_is_met_exactly() -> None:
    """All capacity rows (front-end and back-end studies) meet the truncated figure; none needs a note."""
    capacity = [r for r in paper.rows(2, 3) if r["group"] != paper.STATE_OF_THE_ART]
    assert len(capacity) == 26 and all(not r["note"] for r in capacity)


def test_printed_ranges() -> None:
    assert paper.printed_range("5.3M") == (5_300_000, 5_400_000)
    assert paper.printed_range("277k") == (277_000, 278_000)
    assert paper.printed_range("3.1 M") == (3_100_000, 3_200_000)
    assert paper.printed_range("5.9") == (5_900_000, 6_000_000)  # Table 3 prints x1 without its M
    assert paper.printed_range("7M") == (7_000_000, 8_000_000)
    assert paper.printed_range("2.4M", "rounded") == (2_350_000, 2_450_000)
    assert paper.printed_agrees(5_377_082, "5.3M") and not paper.printed_agrees(5_377_082, "5.4M")
    with pytest.raises(ValueError, match="'about 5M'"):
        paper.printed_range("about 5M")


def test_paper_rows_are_well_formed() -> None:
    keys = {"table", "row", "group", "dataset", "model", "source", "train_size", "roc_auc", "pr_auc", "rmse",
            "params", "config", "params_config", "params_audio", "n_tags", "note"}
    for table, rows in paper.TABLES.items():
        assert len({r["row"] for r in rows}) == len(rows), f"Table {table} has duplicate row labels"
        for row in rows:
            assert set(row) == keys
            if row["config"] is not None and row["config"]["model"] != "gbt":
                ModelConfig(**row["config"])  # a valid configuration of ours
    assert [len(paper.TABLES[t]) for t in (1, 2, 3, 4)] == [7, 17, 17, 6]
    headline = next(r for r in paper.TABLE3 if r["row"] == "# filters x1/2 (selected)")
    assert (headline["roc_auc"], headline["pr_auc"], headline["config"]["frontend_multiplier"]) == (90.40, 38.11, 0.5)


def test_study_models_csv_prints_every_counted_row(capsys: pytest.CaptureFixture) -> None:
    assert study_main(["models", "--csv"]) == 0
    lines = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert lines[0][:4] == ["table", "row", "params", "paper_params"]
    expected = [r for r in paper.rows(2, 3) if r["params"] is not None]
    assert [(line[1], line[3]) for line in lines[1:]] == [(r["row"], r["params"]) for r in expected]
    by_row = {(int(line[0]), line[1]): line for line in lines[1:]}
    assert by_row[(2, "# filters x1")][2] == "5377082"
    assert by_row[(3, "64 CNN filters - 200 units")][2] == "222878"
    assert [row["params"] for row in count_table()] == [int(line[2]) if line[2] else None for line in lines[1:]]


def test_describe_and_breakdown_show_the_arithmetic() -> None:
    net = on_meta("waveform")
    text = describe(net, THREE_S)
    assert "min_samples 19680" in text and "5,377,082" in text
    assert any(line.split()[-5:-3] == ["20", "4371"] for line in text.splitlines())  # layer 7 pool: 20 steps
    blocks = dict(param_breakdown(net))
    assert sum(blocks.values()) == count_params(net)
    assert blocks["frontend.layers.0 [Conv1d 1->64, kernel (3,)]"] == 384


def test_audio_config_changes_the_spectrogram_models() -> None:
    with torch.device("meta"):
        wide = build_model(ModelConfig(model="spectrogram"), n_tags=50, audio_cfg=AudioConfig(n_mels=128))
        assert wide.frontend.timbral[0].height == int(0.9 * 128)
        with pytest.raises(ValueError, match="vgg: 32 mel bands"):
            build_model(ModelConfig(model="vgg"), n_tags=50, audio_cfg=AudioConfig(n_mels=32))
