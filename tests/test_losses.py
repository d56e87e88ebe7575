"""The loss ops against torch's own losses and hand formulas, through torch and ONNX.

The conformance test already checks that torch and ONNX Runtime agree on each op's
examples; here the values themselves are checked, on data the examples do not reach
(ignored targets, class ids beyond 0 and 1, hard 0/1 labels), and a network that
computes its own loss trains.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import dslnet
from dslnet.backends.onnx_emit import emit_onnx, run_onnx

Reference = Callable[..., torch.Tensor]


def compute(body: str, *feeds: torch.Tensor) -> torch.Tensor:
    """The spec body's single output `loss`, from the generated torch module; ONNX
    Runtime must give the same on the same feeds."""
    indented = "\n".join("    " + line for line in body.strip().splitlines())
    prog = dslnet.loads(f"network L() {{\n{indented}\n}}\n")
    module = prog.torch("L").eval()
    with torch.no_grad():
        got = module(*feeds)
    graph = prog.ir("L")
    model = emit_onnx(graph, module.state_dict())
    onnx_feeds = {name: t.numpy() for name, t in zip(graph.inputs, feeds, strict=True)}
    (from_onnx,) = run_onnx(model, onnx_feeds).values()
    np.testing.assert_allclose(from_onnx, got.numpy(), rtol=1e-4, atol=1e-5)
    assert isinstance(got, torch.Tensor)
    return got


def randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def classes(*shape: int, count: int, seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, count, shape, generator=gen)


def hard_labels(*shape: int, seed: int = 2) -> torch.Tensor:
    return (torch.rand(*shape, generator=torch.Generator().manual_seed(seed)) < 0.5).float()


def close(got: torch.Tensor, want: torch.Tensor) -> None:
    torch.testing.assert_close(got, want.to(got.dtype), rtol=1e-5, atol=1e-6)


# --- regression --------------------------------------------------------------------------


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize(
    ("op", "attrs", "reference"),
    [
        ("mse_loss", "", lambda x, t, r: F.mse_loss(x, t, reduction=r)),
        ("l1_loss", "", lambda x, t, r: F.l1_loss(x, t, reduction=r)),
        ("huber_loss", "", lambda x, t, r: F.huber_loss(x, t, reduction=r)),
        ("huber_loss", "delta=0.3, ", lambda x, t, r: F.huber_loss(x, t, reduction=r, delta=0.3)),
    ],
)
def test_regression_losses_match_torch(
    op: str, attrs: str, reference: Reference, reduction: str
) -> None:
    x, t = randn(4, 3, 5), randn(4, 3, 5, seed=1) * 2
    body = (
        "in x: float32[N, 3, 5]\nin t: float32[N, 3, 5]\n"
        f'out loss = {op}(x, t, {attrs}reduction="{reduction}")'
    )
    close(compute(body, x, t), reference(x, t, reduction))


def test_huber_is_quadratic_inside_delta_and_linear_outside() -> None:
    x, t = torch.tensor([[0.1, -0.4, 3.0, -5.0]]), torch.zeros(1, 4)
    body = (
        "in x: float32[N, 4]\nin t: float32[N, 4]\n"
        'out loss = huber_loss(x, t, delta=0.5, reduction="none")'
    )
    close(
        compute(body, x, t), torch.tensor([[0.005, 0.08, 0.5 * (3.0 - 0.25), 0.5 * (5.0 - 0.25)]])
    )


# --- classification ----------------------------------------------------------------------

WEIGHTS = [0.5, 2.0, 1.0, 0.25, 3.0]


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize(
    ("attrs", "options"),
    [
        ("", {}),
        (f"class_weights={WEIGHTS}", {"weight": torch.tensor(WEIGHTS)}),
        ("ignore_index=2", {"ignore_index": 2}),
        ("label_smoothing=0.15", {"label_smoothing": 0.15}),
        (
            f"weight={WEIGHTS}, ignore_index=-100, label_smoothing=0.3",
            {"weight": torch.tensor(WEIGHTS), "label_smoothing": 0.3},
        ),
        (
            f"class_weights={WEIGHTS}, ignore_index=4, label_smoothing=0.1",
            {"weight": torch.tensor(WEIGHTS), "ignore_index": 4, "label_smoothing": 0.1},
        ),
    ],
)
def test_cross_entropy_matches_torch(
    attrs: str, options: dict[str, object], reduction: str
) -> None:
    logits, target = randn(6, 5, 3) * 3, classes(6, 3, count=5)
    target[0, 0] = target[3, 1] = -100  # ignored by torch's default ignore_index
    if options.get("ignore_index", -100) != -100:
        target[target == -100] = 0
    body = (
        "in x: float32[N, 5, T]\nin t: int64[N, T]\n"
        f'out loss = cross_entropy(x, t, {attrs + ", " if attrs else ""}reduction="{reduction}")'
    )
    want = F.cross_entropy(logits, target, reduction=reduction, **options)  # type: ignore[arg-type]
    close(compute(body, logits, target), want)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_nll_loss_matches_torch_on_images(reduction: str) -> None:
    log_probs = F.log_softmax(randn(2, 3, 4, 5), dim=1)
    target = classes(2, 4, 5, count=3)
    target[1, 2] = 1  # some of class 1, which is ignored
    body = (
        "in x: float32[N, 3, H, W]\nin t: int64[N, H, W]\n"
        "out loss = nll_loss(x, t, class_weights=[1.0, 0.3, 2.0], ignore_index=1, "
        f'reduction="{reduction}")'
    )
    want = F.nll_loss(
        log_probs, target, weight=torch.tensor([1.0, 0.3, 2.0]), ignore_index=1, reduction=reduction
    )
    close(compute(body, log_probs, target), want)


def test_cross_entropy_of_a_confident_right_answer_is_near_zero() -> None:
    logits = torch.tensor([[20.0, 0.0, 0.0], [0.0, 0.0, 20.0]])
    body = "in x: float32[N, 3]\nin t: int64[N]\nout loss = cross_entropy(x, t)"
    assert compute(body, logits, torch.tensor([0, 2])).item() < 1e-6
    assert compute(body, logits, torch.tensor([1, 1])).item() > 19


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_binary_cross_entropy_matches_torch(reduction: str) -> None:
    probs, target = torch.sigmoid(randn(3, 7)), hard_labels(3, 7)
    probs[0, 0], target[0, 0] = 0.0, 1.0  # log(0) clamps at -100, as torch
    body = (
        "in p: float32[N, 7]\nin t: float32[N, 7]\n"
        f'out loss = bce_loss(p, t, reduction="{reduction}")'
    )
    close(compute(body, probs, target), F.binary_cross_entropy(probs, target, reduction=reduction))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("pos_weight", [None, [2.5], [0.5, 1.0, 4.0]])
def test_bce_with_logits_matches_torch(pos_weight: list[float] | None, reduction: str) -> None:
    logits, target = randn(5, 3) * 30, hard_labels(5, 3)  # large logits: the stable form
    attrs = f"pos_weight={pos_weight}, " if pos_weight else ""
    body = (
        "in x: float32[N, 3]\nin t: float32[N, 3]\n"
        f'out loss = bce_with_logits(x, t, {attrs}reduction="{reduction}")'
    )
    weight = torch.tensor(pos_weight) if pos_weight else None
    want = F.binary_cross_entropy_with_logits(
        logits, target, pos_weight=weight, reduction=reduction
    )
    close(compute(body, logits, target), want)


@pytest.mark.parametrize(("alpha", "gamma"), [(0.25, 2.0), (0.8, 0.0), (-1.0, 1.5)])
def test_focal_loss_is_the_published_formula(alpha: float, gamma: float) -> None:
    logits, target = randn(4, 6) * 2, hard_labels(4, 6)
    body = (
        "in x: float32[N, 6]\nin t: float32[N, 6]\n"
        f'out loss = focal_loss(x, t, alpha={alpha}, gamma={gamma}, reduction="none")'
    )
    p = torch.sigmoid(logits)
    p_t = torch.where(target == 1, p, 1 - p)  # Lin et al.: FL = -alpha_t (1 - p_t)^g log p_t
    alpha_t = torch.where(target == 1, alpha, 1 - alpha) if alpha >= 0 else torch.ones(())
    close(compute(body, logits, target), -alpha_t * (1 - p_t) ** gamma * torch.log(p_t))


# --- segmentation overlap ----------------------------------------------------------------


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smooth", [1.0, 0.0])
def test_soft_dice_and_iou_are_the_set_formulas(smooth: float, reduction: str) -> None:
    probs, target = torch.sigmoid(randn(3, 2, 4, 4)), hard_labels(3, 2, 4, 4)
    spec = (
        "in p: float32[N, 2, H, W]\nin t: float32[N, 2, H, W]\n"
        'out loss = {}(p, t, smooth={}, reduction="{}")'
    )
    overlap = (probs * target).sum((1, 2, 3))
    size_p, size_t = probs.sum((1, 2, 3)), target.sum((1, 2, 3))
    dice = 1 - (2 * overlap + smooth) / (size_p + size_t + smooth)
    iou = 1 - (overlap + smooth) / (size_p + size_t - overlap + smooth)
    reduce = {"mean": torch.mean, "sum": torch.sum, "none": lambda v: v}[reduction]
    close(compute(spec.format("dice_loss", smooth, reduction), probs, target), reduce(dice))
    close(compute(spec.format("iou_loss", smooth, reduction), probs, target), reduce(iou))


def test_a_perfect_mask_has_no_dice_or_iou_loss() -> None:
    mask = hard_labels(2, 1, 3, 3)
    mask[:, 0, 0, 0] = 1.0  # not empty
    for op in ("dice_loss", "iou_loss"):
        body = (
            "in p: float32[N, 1, 3, 3]\nin t: float32[N, 1, 3, 3]\n"
            f"out loss = {op}(p, t, smooth=0.0)"
        )
        assert abs(compute(body, mask, mask).item()) < 1e-6


# --- metric learning ---------------------------------------------------------------------


@pytest.mark.parametrize("label_type", ["float32", "int64", "bool"])
def test_contrastive_loss_pulls_similar_pairs_and_pushes_others(label_type: str) -> None:
    a, b = randn(6, 4), randn(6, 4, seed=1) * 0.3
    same = hard_labels(6).to(getattr(torch, label_type))
    body = (
        f"in a: float32[N, 4]\nin b: float32[N, 4]\nin s: {label_type}[N]\n"
        'out loss = contrastive_loss(a, b, s, margin=1.5, reduction="none")'
    )
    distance = torch.linalg.vector_norm(a - b + 1e-6, dim=-1)
    s = same.float()
    want = s * distance**2 + (1 - s) * torch.clamp(1.5 - distance, min=0) ** 2
    close(compute(body, a, b, same), want)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize(("p", "swap"), [(2.0, False), (1.0, True), (3.0, False)])
def test_triplet_margin_loss_matches_torch(p: float, swap: bool, reduction: str) -> None:
    anchor, positive, negative = randn(5, 4), randn(5, 4, seed=1), randn(5, 4, seed=2)
    flag = str(swap).lower()
    body = (
        "in a: float32[N, 4]\nin p: float32[N, 4]\nin n: float32[N, 4]\n"
        f"out loss = triplet_margin_loss(a, p, n, margin=0.7, p={p}, swap={flag}, "
        f'reduction="{reduction}")'
    )
    want = F.triplet_margin_loss(
        anchor, positive, negative, margin=0.7, p=p, swap=swap, reduction=reduction
    )
    close(compute(body, anchor, positive, negative), want)


def nt_xent_by_hand(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """Chen et al. 2020, eq. 1, written out per view: -log(exp(sim(i, j) / t) / sum over
    k != i of exp(sim(i, k) / t)), j the other view of i's sample; per sample the mean."""
    views = torch.cat([z1, z2]).double()
    n = len(z1)
    losses = []
    for i in range(2 * n):
        j = (i + n) % (2 * n)
        sims = [F.cosine_similarity(views[i], views[k], dim=0) / temperature for k in range(2 * n)]
        others = torch.stack([sims[k] for k in range(2 * n) if k != i])
        losses.append(-(sims[j] - torch.logsumexp(others, 0)))
    per_view = torch.stack(losses)
    return (per_view[:n] + per_view[n:]) / 2


@pytest.mark.parametrize("temperature", [0.5, 0.07])
def test_nt_xent_is_simclr_loss(temperature: float) -> None:
    z1, z2 = randn(4, 6), randn(4, 6, seed=1)
    body = (
        "in a: float32[N, 6]\nin b: float32[N, 6]\n"
        f'out loss = nt_xent_loss(a, b, temperature={temperature}, reduction="none")'
    )
    want = nt_xent_by_hand(z1, z2, temperature)
    torch.testing.assert_close(compute(body, z1, z2).double(), want, rtol=1e-4, atol=1e-5)
    mean_body = body.replace(', reduction="none"', "")
    torch.testing.assert_close(
        compute(mean_body, z1, z2).double(), want.mean(), rtol=1e-4, atol=1e-5
    )


def test_nt_xent_is_lower_when_the_views_agree() -> None:
    z1 = randn(4, 6)
    body = "in a: float32[N, 6]\nin b: float32[N, 6]\nout loss = nt_xent_loss(a, b)"
    assert compute(body, z1, z1 + 0.01 * randn(4, 6, seed=3)) < compute(
        body, z1, randn(4, 6, seed=4)
    )


# --- divergences and the VAE objective ---------------------------------------------------


@pytest.mark.parametrize("reduction", ["batchmean", "sum", "none"])
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div_matches_torch(log_target: bool, reduction: str) -> None:
    log_q = F.log_softmax(randn(4, 5), dim=1)
    p = F.softmax(randn(4, 5, seed=1) * 2, dim=1)
    if not log_target:
        p[0, 1] = 0.0  # a zero-probability target contributes nothing (not 0 log 0 = nan)
    target = torch.log(p) if log_target else p
    flag = str(log_target).lower()
    body = (
        "in x: float32[N, 5]\nin t: float32[N, 5]\n"
        f'out loss = kl_div(x, t, log_target={flag}, reduction="{reduction}")'
    )
    want = F.kl_div(log_q, target, reduction=reduction, log_target=log_target)
    close(compute(body, log_q, target), want)


def test_kl_div_batchmean_is_the_divergence_per_sample() -> None:
    q, p = F.softmax(randn(3, 4), dim=1), F.softmax(randn(3, 4, seed=1), dim=1)
    body = "in x: float32[N, 4]\nin t: float32[N, 4]\nout loss = kl_div(x, t)"
    want = (p * (p / q).log()).sum(1).mean()
    close(compute(body, q.log(), p), want)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_gaussian_kl_matches_torch_distributions(reduction: str) -> None:
    mu, logvar = randn(5, 3, 2), randn(5, 3, 2, seed=1)
    posterior = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    prior = torch.distributions.Normal(torch.zeros(()), torch.ones(()))
    per_sample = torch.distributions.kl_divergence(posterior, prior).sum((1, 2))
    reduce = {"mean": torch.mean, "sum": torch.sum, "none": lambda v: v}[reduction]
    body = (
        "in m: float32[N, 3, 2]\nin v: float32[N, 3, 2]\n"
        f'out kl = gaussian_kl(m, v, reduction="{reduction}")'
    )
    close(compute(body, mu, logvar), reduce(per_sample))


@pytest.mark.parametrize(("reconstruction", "beta"), [("bce", 1.0), ("mse", 4.0)])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_vae_loss_is_reconstruction_plus_beta_kl(
    reconstruction: str, beta: float, reduction: str
) -> None:
    recon, x = torch.sigmoid(randn(3, 1, 4, 4)), hard_labels(3, 1, 4, 4)
    mu, logvar = randn(3, 2, seed=3), randn(3, 2, seed=4)
    error = F.binary_cross_entropy if reconstruction == "bce" else F.mse_loss
    per_sample = error(recon, x, reduction="none").sum((1, 2, 3))
    per_sample = per_sample - beta * 0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(1)
    reduce = {"mean": torch.mean, "sum": torch.sum, "none": lambda v: v}[reduction]
    body = (
        "in r: float32[N, 1, 4, 4]\nin x: float32[N, 1, 4, 4]\nin mu: float32[N, 2]\n"
        "in lv: float32[N, 2]\nout loss = vae_loss(r, x, mu, lv, "
        f'reconstruction="{reconstruction}", beta={beta}, reduction="{reduction}")'
    )
    close(compute(body, recon, x, mu, logvar), reduce(per_sample))


# --- shape rules -------------------------------------------------------------------------


@pytest.mark.parametrize(("reduction", "shape"), [("mean", ()), ("sum", ()), ("none", ("N", "T"))])
def test_a_reduced_loss_is_a_scalar_and_none_keeps_each_item(
    reduction: str, shape: tuple[str, ...]
) -> None:
    prog = dslnet.loads(
        "network L() {\n in x: float32[N, 4, T]\n in t: int64[N, T]\n"
        f' out loss = cross_entropy(x, t, reduction="{reduction}")\n}}'
    )
    graph = prog.ir("L")
    (loss,) = (v for _, v in graph.outputs)
    assert tuple(str(d) for d in graph.type_of(loss).shape) == shape


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "in x: float32[N, 3]\nin t: float32[N]\nout loss = cross_entropy(x, t)",
            "target must be int64 class ids [N]",
        ),
        (
            "in x: float32[N, 3, T]\nin t: int64[N]\nout loss = cross_entropy(x, t)",
            "target must be int64 class ids [N, T]",
        ),
        (
            "in x: float32[N, 3]\nin t: int64[N]\n"
            "out loss = cross_entropy(x, t, class_weights=[1.0, 2.0])",
            "class_weights has 2 values, the input float32[N, 3] has 3 classes",
        ),
        (
            "in x: float32[N, C]\nin t: int64[N]\nout loss = nll_loss(x, t)",
            "needs a known number of classes C",
        ),
        (
            "in x: float32[N, 3]\nin t: float32[N, 4]\nout loss = mse_loss(x, t)",
            "target must have the type of input float32[N, 3]",
        ),
        (
            "in x: float32[N, 3]\nin t: float32[N, 3]\n"
            "out loss = bce_with_logits(x, t, pos_weight=[1.0, 2.0])",
            "pos_weight has 2 values",
        ),
        (
            "in a: float32[N, 3]\nin b: float32[N, 3]\nin s: float32[N, 3]\n"
            "out loss = contrastive_loss(a, b, s)",
            "label must have one value per pair",
        ),
        (
            "in a: float32[N, 2, 3]\nin b: float32[N, 2, 3]\nout loss = nt_xent_loss(a, b)",
            "needs projections [N, D]",
        ),
        (
            'in x: float32[N, 3]\nin t: float32[N, 3]\nout loss = mse_loss(x, t, reduction="avg")',
            "reduction",
        ),
        (
            "in x: float32[N, 3]\nin t: int64[N]\n"
            "out loss = cross_entropy(x, t, label_smoothing=1.5)",
            "label_smoothing",
        ),
        (
            "in r: float32[N, 4]\nin x: float32[N, 4]\nin mu: float32[M, 2]\nin v: float32[M, 2]\n"
            "out loss = vae_loss(r, x, mu, v)",
            "one dtype and batch size",
        ),
    ],
)
def test_bad_calls_are_located_errors(body: str, message: str) -> None:
    indented = "\n".join("    " + line for line in body.splitlines())
    with pytest.raises(dslnet.CompileError) as caught:
        dslnet.loads(f"network L() {{\n{indented}\n}}\n", filename="bad.net").ir("L")
    rendered = caught.value.render()
    assert message in rendered
    assert "bad.net:" in rendered  # located at the call


# --- a network that computes its own loss ------------------------------------------------

CLASSIFIER = """
network Classifier() {
    in x: float32[N, 4]
    in labels: int64[N]
    logits = x -> linear(16) -> relu -> linear(3)
    out loss = cross_entropy(logits, labels, label_smoothing=0.05)
}
"""


def test_a_network_whose_output_is_its_loss_trains() -> None:
    torch.manual_seed(0)
    module = dslnet.loads(CLASSIFIER).torch("Classifier").train()
    x = randn(32, 4)
    labels = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()  # learnable classes 0..2
    optimizer = torch.optim.SGD(module.parameters(), lr=0.5)
    losses = []
    for _ in range(20):
        optimizer.zero_grad()
        loss = module(x, labels)
        assert loss.shape == ()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]
