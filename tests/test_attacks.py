import pytest
import torch

from introspect.attacks import accuracy, awgn, iterative_fgsm, pgd, predict, uniform_noise


@pytest.fixture(scope="module")
def trained(digits_small_cnn):
    from introspect.data import load_dataset

    model, _ = digits_small_cnn
    x, y = load_dataset("digits", "test", image_size=16).tensors()
    return model, x[:200], y[:200]


def test_pgd_stays_in_the_ball_and_cuts_accuracy(trained):
    model, x, y = trained
    clean = accuracy(model, x, y)
    assert clean > 0.9
    eps = 0.1
    x_adv = pgd(model, x, y, eps=eps, nb_iter=20, eps_iter=0.02)
    assert (x_adv - x).abs().max() <= eps + 1e-6
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    adv = accuracy(model, x_adv, y)
    assert adv < clean - 0.3
    weaker = accuracy(model, pgd(model, x, y, eps=0.02, nb_iter=20, eps_iter=0.005), y)
    assert adv <= weaker <= clean  # a larger ball hurts at least as much


def _plain_pgd(model, x, y, eps, steps, step, start):
    """Textbook L-inf PGD (Madry et al.) with a given random start."""
    x_adv = (x + start).clamp(0, 1)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(model(x_adv), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x_adv)
        x_adv = x_adv.detach() + step * grad.sign()
        x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0, 1)
    return x_adv


def test_pgd_agrees_with_independent_implementations(trained):
    torchattacks = pytest.importorskip("torchattacks")
    model, x, y = trained
    eps, steps, step = 0.08, 20, 0.01
    ours = 1 - accuracy(model, pgd(model, x, y, eps=eps, nb_iter=steps, eps_iter=step), y)
    start = (torch.rand_like(x) * 2 - 1) * eps
    plain = 1 - accuracy(model, _plain_pgd(model, x, y, eps, steps, step, start), y)
    ta = torchattacks.PGD(model, eps=eps, alpha=step, steps=steps, random_start=True)
    theirs = 1 - accuracy(model, ta(x, y), y)
    assert abs(ours - plain) <= 0.05 and abs(ours - theirs) <= 0.05, (ours, plain, theirs)


def test_targeted_fgsm_trajectory_moves_towards_the_target(trained):
    model, x, y = trained
    x0 = x[:8]
    target = (y[:8] + 1) % 10
    traj = iterative_fgsm(model, x0, target, steps=30, step_size=0.01, loss="ce")
    assert traj.shape == (8, 31, *x0.shape[1:])
    assert torch.equal(traj[:, 0], x0)
    steps = (traj[:, 1:] - traj[:, :-1]).abs().amax(dim=(2, 3, 4))
    assert steps.max() <= 0.01 + 1e-6
    p_start = predict(model, traj[:, 0]).softmax(1)[torch.arange(8), target]
    p_end = predict(model, traj[:, -1]).softmax(1)[torch.arange(8), target]
    assert (p_end > p_start).all()
    final = iterative_fgsm(model, x0, target, steps=30, step_size=0.01, loss="ce", record=False)
    assert torch.allclose(final, traj[:, -1])


def test_noise_controls_are_bounded_and_seeded():
    x = torch.rand(4, 1, 8, 8) * 0.5
    u = uniform_noise(x, 1 / 255)
    assert ((u - x) >= 0).all() and ((u - x) <= 1 / 255 + 1e-7).all()
    assert torch.equal(u, uniform_noise(x, 1 / 255))
    draws = awgn(x[0], sigma=0.1, n=200)
    assert draws.shape == (200, 1, 8, 8) and draws.min() >= 0 and draws.max() <= 1
    assert (draws - x[0]).std().item() == pytest.approx(0.1, rel=0.15)


def test_attacks_refuse_normalised_inputs_and_train_mode(trained):
    model, x, y = trained
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        pgd(model, (x - 0.5) / 0.2, y, eps=0.1)
    model.train()
    try:
        with pytest.raises(RuntimeError, match="eval"):
            pgd(model, x, y, eps=0.1)
    finally:
        model.eval()


def test_noise_path_grows_one_pattern_from_the_clean_image():
    from introspect.attacks import noise_path

    x = torch.full((1, 6, 6), 0.5)
    p = noise_path(x, 0.2, 4, seed=3)
    assert p.shape == (5, 1, 6, 6) and torch.equal(p[0], x)
    step = p[1] - x  # sigma 0.05 at step 1, unclipped at 0.5; step k is k times that
    for k in range(2, 5):
        inside = (p[k] > 0) & (p[k] < 1)
        torch.testing.assert_close((p[k] - x)[inside], (k * step)[inside], rtol=1e-5, atol=1e-6)
    assert torch.equal(noise_path(x, 0.2, 4, seed=3), p)
    assert float(p.min()) >= 0 and float(p.max()) <= 1
    with pytest.raises(ValueError, match="steps"):
        noise_path(x, 0.2, 0)
