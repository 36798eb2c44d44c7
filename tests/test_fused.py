"""The fused CPU path (study/models/fused.py, banded timbral filters) against the plain torch operations.

Every test runs twice: with the element-wise passes as compiled loops (study/models/kernels.py, the
default) and as torch operations (what runs where numba is missing).
"""
from __future__ import annotations

import contextlib
import copy

import pytest
import torch
import torch.nn.functional as F

from study.config import ModelConfig, preset_config
from study.models import build_model
from study.models.blocks import VerticalFilters, banded_weights
from study.models.fused import AxisPool, WindowPool, conv_norm_pool, plain_operations, torch_passes

SMALL = {"frontend_multiplier": 0.25, "backend_filters": 16, "dense_units": 16}


@pytest.fixture(autouse=True, params=["compiled loops", "torch passes"])
def element_passes(request):
    """The fused path's element-wise passes: numba's compiled loops, or torch's operations."""
    if request.param == "torch passes":
        with torch_passes():
            yield request.param
    else:
        pytest.importorskip("numba")
        yield request.param


def test_the_compiled_loops_are_the_default_cpu_path(element_passes, monkeypatch):
    """numba is a dependency: without being told otherwise the fused block runs its loops, ReLU first only."""
    from study.models import kernels

    calls = []
    for name in ("window_forward", "window_backward"):
        original = getattr(kernels, name)
        monkeypatch.setattr(kernels, name, lambda *args, _f=original, _n=name: calls.append(_n) or _f(*args))
    x = torch.randn(2, 3, 30, requires_grad=True)
    norm = torch.nn.BatchNorm1d(3)
    conv_norm_pool(x, torch.randn(3, 3, 3), torch.zeros(3), norm, stride=(1,), padding=(0,),
                   pool=WindowPool(3)).sum().backward()
    assert calls == ([] if element_passes == "torch passes" else ["window_forward", "window_backward"])
    calls.clear()
    conv_norm_pool(x, torch.randn(3, 3, 3), torch.zeros(3), norm, stride=(1,), padding=(0,), relu_first=False,
                   pool=WindowPool(3)).sum().backward()
    assert calls == []  # batch norm before ReLU (SampleCNN): torch's operations


def randomise_norms(model: torch.nn.Module, seed: int = 0) -> None:
    """Batch-norm scales of both signs (a negative scale turns the pooled max into a min) and shifts."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in model.modules():
            if isinstance(layer, torch.nn.modules.batchnorm._BatchNorm):
                layer.weight.copy_(torch.rand(layer.weight.shape, generator=generator) * 3 - 1)
                layer.bias.copy_(torch.rand(layer.bias.shape, generator=generator) * 2 - 1)


def fast_and_plain(name: str, samples: int, **model_fields):
    """Two copies of one float64 model, the same input, and each copy's training-mode output and gradients."""
    torch.manual_seed(0)
    fast = build_model(ModelConfig(model=name, dropout=0.0, **model_fields), n_tags=7).double()
    for layer in fast.modules():  # also the fixed dropout of VGG's convolutions
        if isinstance(layer, torch.nn.Dropout):
            layer.p = 0.0
    randomise_norms(fast)
    plain = copy.deepcopy(fast)
    audio = 0.1 * torch.randn(5, samples, dtype=torch.float64)
    fast.fit_input_stats([audio])
    plain.fit_input_stats([audio])
    out_fast = fast(audio)
    with plain_operations():
        out_plain = plain(audio)
    grad = torch.randn_like(out_fast)
    out_fast.backward(grad)
    with plain_operations():
        out_plain.backward(grad)
    return fast, plain, audio, out_fast, out_plain


def assert_evaluation_equal(fast, plain, audio) -> None:
    """With the running statistics (eval mode), the fused path equals the plain operations; scored
    without gradients (its passes in place) it gives exactly what it gives with them, and changes no weight."""
    fast.eval()
    plain.eval()
    before = copy.deepcopy(fast.state_dict())
    with torch.no_grad():
        evaluated = fast(audio)
        with plain_operations():
            expected = plain(audio)
    torch.testing.assert_close(evaluated, expected, rtol=1e-9, atol=1e-9)
    with torch.inference_mode():
        assert torch.equal(fast(audio), evaluated)
    assert torch.equal(fast(audio).detach(), evaluated)  # gradients on: the out-of-place passes
    for key, value in fast.state_dict().items():
        assert torch.equal(value, before[key]), key


@pytest.mark.parametrize("name, samples, fields", [
    ("waveform", 20_000, SMALL), ("spectrogram", 20_000, SMALL), ("samplecnn", 59_049, {}),
    ("timbre_cnn", 48_000, {}), ("vgg", 48_000, {})])
def test_fused_models_equal_the_plain_operations_in_float64(name, samples, fields):
    fast, plain, audio, out_fast, out_plain = fast_and_plain(name, samples, **fields)
    torch.testing.assert_close(out_fast, out_plain, rtol=1e-9, atol=1e-9)
    scale = max(p.grad.abs().max() for p in plain.parameters() if p.grad is not None)
    for (key, p_fast), p_plain in zip(fast.named_parameters(), plain.parameters()):
        # SampleCNN's conv biases feed a batch norm directly: their exact gradient is zero, both paths give noise
        torch.testing.assert_close(p_fast.grad, p_plain.grad, rtol=1e-7, atol=1e-9 * float(scale), msg=key)
    for b_fast, b_plain in zip(fast.buffers(), plain.buffers()):  # running statistics, batches tracked
        torch.testing.assert_close(b_fast, b_plain, rtol=1e-9, atol=1e-12)
    assert_evaluation_equal(fast, plain, audio)


def test_ties_send_the_gradient_to_the_first_maximum_as_max_pool_does():
    z = torch.full((2, 3, 12), 0.3, dtype=torch.float64)  # constant input: every window is a tie
    z[..., 6:] = torch.randn(2, 3, 6, dtype=torch.float64)
    norms = [torch.nn.BatchNorm1d(3).double() for _ in range(2)]
    weight = torch.eye(3, dtype=torch.float64).unsqueeze(-1)  # a 1-tap identity convolution
    inputs = [z.clone().requires_grad_() for _ in range(2)]
    fused = conv_norm_pool(inputs[0], weight, torch.zeros(3, dtype=torch.float64), norms[0], stride=(1,),
                           padding=(0,), pool=WindowPool(3))
    plain = F.max_pool1d(norms[1](torch.relu(inputs[1])), 3)
    grad = torch.randn_like(plain)
    fused.backward(grad)
    plain.backward(grad)
    torch.testing.assert_close(inputs[0].grad, inputs[1].grad, rtol=1e-12, atol=1e-12)


def test_banded_weights_are_the_two_dimensional_filter_at_every_frequency_position():
    weight = torch.randn(3, 1, 5, 7)
    spectrogram = torch.randn(2, 20, 11)  # (batch, mels, frames)
    bands, positions = banded_weights(weight, 20)
    assert positions == 14 and bands.shape == (3 * 14, 20, 5)
    as_1d = F.conv1d(spectrogram, bands, padding=2).view(2, 3, 14, 11)
    as_2d = F.conv2d(spectrogram.transpose(1, 2).unsqueeze(1), weight, padding=(2, 0)).permute(0, 1, 3, 2)
    torch.testing.assert_close(as_1d, as_2d, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="does not fit"):
        banded_weights(torch.randn(1, 1, 1, 30), 20)


def test_vertical_filters_pool_over_frequency_on_both_paths():
    layer = VerticalFilters(width=3, height=5, filters=4).double()
    randomise_norms(layer)
    spectrogram = torch.randn(3, 12, 9, dtype=torch.float64)
    fast = layer(spectrogram)
    with plain_operations():
        plain = layer(spectrogram)
    assert fast.shape == (3, 4, 9)
    torch.testing.assert_close(fast, plain, rtol=1e-9, atol=1e-9)
    assert AxisPool(2).max(torch.arange(6.0).view(1, 1, 3, 2)).tolist() == [[[4.0, 5.0]]]


@pytest.mark.parametrize("name", ["spectrogram", "waveform"])
def test_a_short_training_run_in_float32_stays_as_close_to_float64_as_the_plain_path(name):
    """Four Adam steps of the default preset's model.  Float32 rounding differs between any two
    orders of summation and training amplifies it, so the fused losses are held to the float64
    losses (which both paths share) as tightly as the plain float32 losses are, plus 1e-5."""
    cfg = preset_config("default").with_overrides(model=name, dropout=0.0)
    audio = 0.1 * torch.randn(8, 48_000, generator=torch.Generator().manual_seed(1))
    labels = (torch.rand(8, 9, generator=torch.Generator().manual_seed(2)) < 0.3).float()

    def losses(plain: bool, dtype: torch.dtype) -> torch.Tensor:
        torch.manual_seed(0)
        model = build_model(cfg.model, n_tags=9, audio_cfg=cfg.audio).to(dtype)
        model.fit_input_stats([audio.to(dtype)])
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        out = []
        for _ in range(4):
            optimizer.zero_grad()
            with plain_operations() if plain else contextlib.nullcontext():
                loss = F.binary_cross_entropy_with_logits(model(audio.to(dtype)), labels.to(dtype))
                loss.backward()
            optimizer.step()
            out.append(float(loss.detach()))
        return torch.tensor(out, dtype=torch.float64)

    truth = losses(True, torch.float64)
    torch.testing.assert_close(losses(False, torch.float64), truth, rtol=1e-9, atol=1e-9)
    plain_error = (losses(True, torch.float32) - truth).abs()
    fused_error = (losses(False, torch.float32) - truth).abs()
    assert (fused_error <= 2 * plain_error + 1e-5).all(), (fused_error, plain_error)


@pytest.mark.parametrize("name", ["waveform", "spectrogram"])
def test_one_clip_per_chunk_gives_the_same_outputs_and_gradients(name, monkeypatch):
    """Chunks of one clip (training and evaluation) change only the order of the sums."""
    from study.models import fused

    monkeypatch.setattr(fused, "CACHE_BYTES", 1)
    fast, plain, audio, out_fast, out_plain = fast_and_plain(name, 20_000, **SMALL)
    torch.testing.assert_close(out_fast, out_plain, rtol=1e-9, atol=1e-9)
    for p_fast, p_plain in zip(fast.parameters(), plain.parameters()):
        torch.testing.assert_close(p_fast.grad, p_plain.grad, rtol=1e-7, atol=1e-9)
    assert_evaluation_equal(fast, plain, audio)


def test_a_max_over_more_than_127_positions_of_a_two_dimensional_map():
    """The last axis of a 2-D map pooled whole (the timbral filters' plain 2-D path), with window
    positions beyond what an 8-bit index holds."""
    conv = torch.nn.Conv2d(1, 3, (3, 5), padding=(1, 0)).double()
    norms = [torch.nn.BatchNorm2d(3).double() for _ in range(2)]
    randomise_norms(norms[0])
    norms[1].load_state_dict(norms[0].state_dict())
    inputs = [torch.randn(2, 1, 6, 134, dtype=torch.float64, requires_grad=True) for _ in range(1)] * 2
    fused = conv_norm_pool(inputs[0], conv.weight, conv.bias, norms[0], stride=(1, 1), padding=(1, 0),
                           pool=AxisPool(3))
    plain = norms[1](torch.relu(conv(inputs[1]))).amax(dim=3)
    torch.testing.assert_close(fused, plain, rtol=1e-9, atol=1e-9)
    grad = torch.randn_like(plain)
    fused_grads = torch.autograd.grad(fused, [inputs[0], conv.weight], grad)
    plain_grads = torch.autograd.grad(plain, [inputs[1], conv.weight], grad)
    for got, expected in zip(fused_grads, plain_grads):
        torch.testing.assert_close(got, expected, rtol=1e-7, atol=1e-9)


def test_the_compiled_loops_leave_torch_on_its_threads(element_passes):
    """A batch job runs torch on one thread; launching numba's OpenMP threads must not raise that to every core.

    Checked in a fresh process, since numba launches its threads once per process.
    """
    if element_passes == "torch passes":
        pytest.skip("no compiled loop runs")
    import os
    import subprocess
    import sys

    script = ("import torch\n"
              "from study.models.fused import WindowPool, conv_norm_pool\n"
              "x = torch.randn(2, 3, 30, requires_grad=True)\n"
              "conv_norm_pool(x, torch.randn(3, 3, 3), torch.zeros(3), torch.nn.BatchNorm1d(3), stride=(1,),\n"
              "               padding=(0,), pool=WindowPool(3)).sum().backward()\n"
              "import numba\n"
              "print(torch.get_num_threads(), numba.get_num_threads())\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "2"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "1"]
