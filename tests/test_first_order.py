"""First-order (ADMM) arrangement solver against the cvxpy reference."""

import numpy as np
import pytest

from skconvexscore._cvxpy_solver import solve_arrangement_output_cvxpy
from skconvexscore._programs import (
    ArrangementProgram,
    SolverError,
    UnboundedProgramError,
    sample_patterns,
    standardize,
)

torch = pytest.importorskip("torch")
from skconvexscore._first_order import (  # noqa: E402
    solve_arrangement_first_order,
    solve_arrangement_output_first_order,
)


def make_program(objective, d, alpha, activation="relu", skip=True, n=40, n_gates=30, seed=0,
                 sigma=0.3, copies=2):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    X[:, 0] += 2.0 * np.sign(rng.normal(size=n))  # two clusters
    targets = None
    if objective == "dsm":  # math notes 4.2: targets -eps/sigma on the noisy points
        eps = rng.normal(size=(n * copies, d))
        Z, st = standardize(np.repeat(X, copies, axis=0) + sigma * eps)
        targets = -eps / sigma * st.scale  # the score scales as 1/scale: standardised units
    else:
        Z, _ = standardize(X)
    masks, gates = sample_patterns(Z, n_gates, activation, np.random.RandomState(seed))
    return ArrangementProgram(objective, Z, masks, gates, alpha, activation, skip, targets)


def assert_agrees(program, solution, reference, rtol=1e-4, tol=1e-6, k=0):
    assert solution.objective == pytest.approx(reference.objective, rel=rtol, abs=rtol)
    # the reported objective is the program's own value at the returned point
    value = program.objective_value(k, solution.positive, solution.negative, solution.skip_row,
                                    solution.intercept)
    assert value == pytest.approx(solution.objective, rel=1e-9, abs=1e-12)
    assert program.cone_violation(solution.positive, solution.negative) <= tol
    assert solution.constraint_violation <= tol
    assert solution.duality_gap <= tol * max(1.0, abs(solution.objective)) + 1e-12
    for array in (solution.positive, solution.negative, solution.skip_row):
        assert isinstance(array, np.ndarray) and array.dtype == np.float64


CASES = [(d, act, skip) for d in (2, 3)
         for act, skip in (("relu", True), ("relu", False), ("abs", True), ("abs", False))]


@pytest.mark.parametrize("objective, alpha", [("sm", 0.2), ("dsm", 0.05)])
@pytest.mark.parametrize("d, activation, skip", CASES)
def test_agrees_with_cvxpy(objective, alpha, d, activation, skip):
    program = make_program(objective, d, alpha, activation, skip)
    reference = solve_arrangement_output_cvxpy(program, 0)
    solution = solve_arrangement_output_first_order(program, 0, tol=1e-6)
    assert_agrees(program, solution, reference)


@pytest.mark.parametrize("objective, alpha", [("sm", 0.06), ("dsm", 0.02)])
def test_working_set_solution_satisfies_every_cone_row(objective, alpha):
    # 1200 points: ADMM carries a few dozen rows per cone out of 1200 (2400 for DSM)
    program = make_program(objective, 2, alpha, n=1200, n_gates=40, copies=1)
    reference = solve_arrangement_output_cvxpy(program, 0)
    solution = solve_arrangement_output_first_order(program, 0, tol=1e-6)
    assert_agrees(program, solution, reference)
    assert np.count_nonzero(np.linalg.norm(solution.positive, axis=1)) > 0


@pytest.mark.parametrize("objective, skip", [("sm", True), ("sm", False), ("dsm", True)])
def test_pattern_hessian_reproduces_the_fit(objective, skip):
    # the fit, with the skip connection eliminated, is 1/2 a^T H a + r . a + const in a = v - w
    from skconvexscore._first_order import _Tensors

    program = make_program(objective, 3, 0.1, skip=skip, n=50)
    tensors = _Tensors(program, torch.device("cpu"), torch.float64)
    op = tensors.output(1)
    H = tensors.pattern_hessian().numpy()
    r, const = (x.numpy() if hasattr(x, "numpy") else x for x in op.linear_term())
    rng = np.random.default_rng(0)
    U = rng.normal(size=(2 * program.n_patterns, program.d + 1))
    F, beta = op.fit(op.pre(torch.as_tensor(U)))
    exact = float(op.smooth_value(F, beta, torch.as_tensor(U)))
    a = (U[: program.n_patterns] - U[program.n_patterns:]).ravel()
    assert 0.5 * a @ H @ a + r.ravel() @ a + const == pytest.approx(exact, rel=1e-10)
    assert np.all(np.linalg.eigvalsh(H) > -1e-10)


def six_points(seed):
    Z, _ = standardize(np.random.default_rng(seed).normal(size=(6, 2)))
    masks, gates = sample_patterns(Z, 2000, "relu", np.random.RandomState(0))
    return Z, masks, gates


@pytest.mark.parametrize("seed, k", [(0, 0), (1, 0), (1, 1), (3, 0)])
def test_unbounded_sm_raises_like_cvxpy(seed, k):
    # 6 points in 2-D, all patterns: alpha = 0.3 is below the bound (about d/n)
    Z, masks, gates = six_points(seed)
    program = ArrangementProgram("sm", Z, masks, gates, 0.3)
    with pytest.raises(UnboundedProgramError):
        solve_arrangement_output_cvxpy(program, k)
    with pytest.raises(UnboundedProgramError, match="unbounded below"):
        solve_arrangement_output_first_order(program, k)


def test_bounded_six_points_agree_with_cvxpy():
    Z, masks, gates = six_points(1)
    program = ArrangementProgram("sm", Z, masks, gates, 0.34)
    for k in range(2):
        reference = solve_arrangement_output_cvxpy(program, k)
        solution = solve_arrangement_output_first_order(program, k)
        assert solution.objective == pytest.approx(reference.objective, rel=1e-4)


def test_bounded_program_near_its_bound_is_not_called_unbounded():
    """Near the bound the optimum is large (total norm ~1e3 here) and ADMM's iterates grow
    towards it outside their cones, where their own value falls far below the optimum (-54
    against cvxpy's -17.89 for this output). Only values at feasible points may call a
    program unbounded; an uncertified run is a SolverError."""
    rng = np.random.default_rng(5)
    rng.normal(size=(50, 2))
    X = rng.normal(size=(60, 3))
    X[:30, 0] += 3
    Z, _ = standardize(X)
    masks, gates = sample_patterns(Z, 40, "abs", np.random.RandomState(2))
    program = ArrangementProgram("sm", Z, masks, gates, 0.1, "abs", True)
    reference = solve_arrangement_output_cvxpy(program, 2)
    assert reference.objective == pytest.approx(-17.892035, rel=1e-6)
    try:
        solution = solve_arrangement_output_first_order(program, 2, max_iter=3000)
    except SolverError as exc:
        assert not isinstance(exc, UnboundedProgramError), exc
    else:
        assert solution.objective == pytest.approx(reference.objective, rel=1e-4)


def _skewed_points(seed=0):
    rng = np.random.default_rng(seed)
    d, n = 2, int(rng.integers(20, 45))  # 41 points
    X = rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) * rng.uniform(0.2, 5) + rng.normal(size=d) * 3
    return standardize(X)[0]


def test_a_bounded_program_whose_optimum_lies_far_out_is_not_called_unbounded():
    """41 points, relu with skip, alpha = 2/n: bounded (cvxpy's optimum is attained, at a
    norm of about 1e6), but ADMM's iterates grow 1000-fold with falling values on the way,
    and that alone was reported as 'numerically unbounded'. The exact descent-ray program
    now decides; without a ray the run ends uncertified (SolverError)."""
    Z = _skewed_points()
    masks, gates = sample_patterns(Z, 30, "relu", np.random.RandomState(0))
    program = ArrangementProgram("sm", Z, masks, gates, 2.0 / Z.shape[0], "relu", True)
    assert np.isfinite(solve_arrangement_output_cvxpy(program, 0).objective)
    with pytest.raises(SolverError, match="not certified") as caught:
        solve_arrangement_output_first_order(program, 0, max_iter=20000)
    assert not isinstance(caught.value, UnboundedProgramError)


@pytest.mark.parametrize("activation", ["relu", "abs"])
def test_a_constant_unit_without_skip_connection_is_kept(activation):
    """Without skip connection the all-active pattern is kept (math notes 4), and a block
    there with a bias and no input weight is the output's constant. The certificate zeroed
    every such block, as if it broke its cone, and never certified (relative gap 50 for
    relu at alpha = 0.122)."""
    Z = _skewed_points()
    masks, gates = sample_patterns(Z, 30, activation, np.random.RandomState(0), keep_full=True)
    program = ArrangementProgram("sm", Z, masks, gates, 0.122, activation, False)
    for k in range(2):
        assert_agrees(program, solve_arrangement_output_first_order(program, k),
                      solve_arrangement_output_cvxpy(program, k), k=k)


def test_bias_only_blocks_cannot_cheat_the_working_set():
    """A block with a bias and no input weights lies in its cone only if every point of the
    pattern is on one side. When the carried rows of a pattern all had one sign, ADMM used
    such blocks as free steps (the certificate, on the full cones, zeroed them and failed:
    dual residual 2.6, gap 50 %); every pattern now carries a row from each side."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 2))
    Z = (X - X.mean(axis=0)) / X.std()
    eps = rng.normal(size=(10 * 30, 2))  # ten noisy copies, sigma = 0.1
    noisy, targets = np.tile(Z, (10, 1)) + 0.1 * eps, -eps / 0.1
    masks, gates = sample_patterns(noisy, 100, "relu", np.random.RandomState(0))
    program = ArrangementProgram("dsm", noisy, masks, gates, 0.1, "relu", True, targets)
    assert_agrees(program, solve_arrangement_output_first_order(program, 0),
                  solve_arrangement_output_cvxpy(program, 0))


def test_gaussian_regime_with_few_points():
    """40 points, 30 gates, alpha above the Gaussian regime: no unit, and output k's value
    is -(Sigma^-1)_kk / 2. Uncertified after 50,000 iterations before (dual residual 0.73)."""
    rng = np.random.default_rng(1)
    centres = rng.choice([-2.0, 2.0], size=(40, 1))
    Z, _ = standardize(0.6 * rng.normal(size=(40, 2)) + centres)
    masks, gates = sample_patterns(Z, 30, "relu", np.random.RandomState(1))
    program = ArrangementProgram("sm", Z, masks, gates, 0.4)
    precision = np.linalg.inv(np.cov(Z.T, bias=True))
    for k in range(2):
        solution = solve_arrangement_output_first_order(program, k)
        assert solution.objective == pytest.approx(-0.5 * precision[k, k], rel=1e-6)
        assert not np.any(solution.positive[:, :2]) and not np.any(solution.negative[:, :2])


def test_small_targets_are_solved_to_their_scale():
    """Noise 1e4 times the data's spread makes targets ~1e-4 in standardised units, and values
    ~1e-9. At this alpha no unit pays for itself: the optimum is the least-squares line.
    Gaps measured against max(1, |value|), and Clarabel's absolute tolerance, certified
    points far above it (60 times, in an estimator fit)."""
    program = make_program("dsm", 2, 0.05)
    y = 1e-4 * program.targets[:, 0]
    small = ArrangementProgram("dsm", program.Z, program.masks, program.gates, program.alpha,
                               program.activation, program.skip_connection, 1e-4 * program.targets)
    design = np.hstack([program.Z, np.ones((program.n, 1))])
    residual = y - design @ np.linalg.lstsq(design, y, rcond=None)[0]
    line = 0.5 * np.mean(residual**2)
    assert solve_arrangement_output_cvxpy(small, 0).objective == pytest.approx(line, rel=1e-6)
    assert solve_arrangement_output_first_order(small, 0).objective == pytest.approx(
        line, rel=1e-6)


@pytest.mark.parametrize("max_iter", [0, -5, 2.7, True])
def test_invalid_max_iter_is_a_clear_error(max_iter):
    # 0 and -5 ran one iteration and reported "did not reach tol in max_iter=-5"; 2.7 became 2
    with pytest.raises(ValueError, match="max_iter must be a positive integer"):
        solve_arrangement_output_first_order(make_program("sm", 2, 0.2), 0, max_iter=max_iter)


def test_max_iter_raises_solver_error_not_garbage():
    program = make_program("sm", 2, 0.2)
    with pytest.raises(SolverError, match="did not reach tol"):
        solve_arrangement_output_first_order(program, 0, tol=1e-9, max_iter=50)


@pytest.mark.parametrize("objective, alpha", [("sm", 0.2), ("dsm", 0.05)])
def test_float32_storage_certifies_the_float64_program(objective, alpha):
    """ADMM runs on the points rounded to float32 (~6e-8); the certificate, the objective
    and the cone check are the float64 program's, the one that was asked."""
    program = make_program(objective, 2, alpha)
    reference = solve_arrangement_output_cvxpy(program, 0)
    single = solve_arrangement_output_first_order(program, 0, tol=1e-6, dtype="float32")
    assert single.info["dtype"] == "float32"
    assert_agrees(program, single, reference, rtol=1e-5)


def test_warm_start_from_the_optimum_and_along_an_alpha_path():
    program = make_program("sm", 2, 0.2, n=200)
    cold = solve_arrangement_output_first_order(program, 0)
    again = solve_arrangement_output_first_order(program, 0, warm_start=cold)
    assert again.objective == pytest.approx(cold.objective, rel=1e-6)
    assert again.n_iter <= 20  # a fixed point: certified at the first checks
    nearby = ArrangementProgram("sm", program.Z, program.masks, program.gates, 0.21)
    warm = solve_arrangement_output_first_order(nearby, 0, warm_start=cold)
    fresh = solve_arrangement_output_first_order(nearby, 0)
    assert warm.objective == pytest.approx(fresh.objective, rel=1e-5)
    assert cold.info["memory_bytes"] > 0


def test_all_outputs_helper_matches_per_output():
    program = make_program("sm", 2, 0.3, n=30, n_gates=20)
    solutions = solve_arrangement_first_order(program)
    assert len(solutions) == 2
    for k, solution in enumerate(solutions):
        reference = solve_arrangement_output_cvxpy(program, k)
        assert solution.objective == pytest.approx(reference.objective, rel=1e-4)


def test_importing_the_package_does_not_load_torch():
    import subprocess
    import sys

    code = "import sys, skconvexscore._first_order, skconvexscore; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.cuda
def test_cuda_agrees_with_cpu():
    program = make_program("sm", 3, 0.2)
    cpu = solve_arrangement_output_first_order(program, 0)
    gpu = solve_arrangement_output_first_order(program, 0, device="cuda", dtype="float64")
    assert gpu.objective == pytest.approx(cpu.objective, rel=1e-5)
    assert gpu.info["device"].startswith("cuda")
    # the GPU default stores float32 and certifies the float64 program
    gpu32 = solve_arrangement_output_first_order(program, 0, device="cuda")
    assert gpu32.info["dtype"] == "float32"
    assert_agrees(program, gpu32, cpu, rtol=1e-5)
    loose = solve_arrangement_output_first_order(program, 0, device="cuda:0", tol=1e-4)
    assert loose.objective == pytest.approx(cpu.objective, rel=1e-3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.cuda
@pytest.mark.parametrize("Estimator", ["sm", "dsm"])
def test_estimators_fit_on_cuda(Estimator):
    """solver_options={"device": "cuda"} reaches the solver through fit, and the fitted
    model is the CPU's (same patterns, certified float64 program) held in NumPy arrays."""
    from skconvexscore import ConvexDenoisingScoreMatcher, ConvexScoreMatcher

    X = np.random.default_rng(0).normal(size=(120, 2))
    X[:, 0] += 2.0 * np.sign(X[:, 1])
    if Estimator == "sm":
        make = lambda **kw: ConvexScoreMatcher(alpha=0.1, n_patterns=30, random_state=0,  # noqa: E731
                                               solver="first_order", **kw)
    else:
        make = lambda **kw: ConvexDenoisingScoreMatcher(  # noqa: E731
            alpha=0.05, noise_level=0.3, n_noise_samples=2, n_patterns=30, random_state=0,
            solver="first_order", **kw)
    cpu = make().fit(X)
    gpu = make(solver_options={"device": "cuda"}).fit(X)
    objective = lambda model: np.sum(np.atleast_1d(model.objective_))  # noqa: E731
    assert objective(gpu) == pytest.approx(objective(cpu), rel=1e-5, abs=1e-6)
    arrays = [getattr(net, name) for net in gpu.networks_
              for name in ("hidden_weights", "hidden_biases", "output_weights", "skip_weights")]
    assert all(type(value) is np.ndarray for value in arrays)
    assert not any(isinstance(value, torch.Tensor) for value in vars(gpu).values())
    np.testing.assert_allclose(gpu.predict(X), cpu.predict(X), rtol=1e-2,
                               atol=1e-2 * np.abs(cpu.predict(X)).max())


def test_a_certified_last_iterate_is_returned_at_max_iter():
    """In the Gaussian regime the start is certified within a few iterations: reaching
    max_iter there raised 'did not reach tol' while quoting a gap of -4e-16."""
    program = make_program("sm", 2, 5.0)
    reference = solve_arrangement_output_cvxpy(program, 0)
    solution = solve_arrangement_output_first_order(program, 0, tol=1e-6, max_iter=5)
    assert solution.objective == pytest.approx(reference.objective, rel=1e-6)
    assert solution.objective == pytest.approx(program.skip_only_values()[0], rel=1e-9)


def _anisotropic_points(n=150, seed=0):
    """Correlated 2-D points whose spreads differ by 1e8 (1e4 and 1e-4), off-centre."""
    rng = np.random.default_rng(seed)
    Z = rng.standard_normal((n, 2)) @ np.array([[1.0, 0.0], [0.5, 0.8]])
    return Z * np.array([1e4, 1e-4]) + np.array([5e3, -2.0])


def test_anisotropic_points_keep_the_skip_connection_along_the_thin_direction():
    """pinv of the Gram of the points cut the 1e-8 spread (its square is 1e-16 of the
    largest): the skip connection lost that direction and a near-zero score was certified,
    objective -3.6e-9 for the Gaussian's -1.07e8. At a large alpha the optimum is the
    Gaussian score -Sigma^-1 (x - mean), with value -tr(Sigma^-1)/2."""
    from skconvexscore import ConvexScoreMatcher

    X = _anisotropic_points()
    precision = np.linalg.inv(np.cov(X.T, bias=True))
    gaussian = -(X - X.mean(axis=0)) @ precision
    model = ConvexScoreMatcher(alpha=1e9, n_patterns=20, random_state=0,
                               solver="first_order").fit(X)
    assert model.objective_ == pytest.approx(-0.5 * np.trace(precision), rel=1e-6)
    score = model.predict(X)
    for k in range(2):  # each coordinate to its own scale (they differ by 1e16)
        np.testing.assert_allclose(score[:, k], gaussian[:, k], rtol=0,
                                   atol=1e-6 * np.abs(gaussian[:, k]).max())


def test_float32_storage_reaches_the_default_tol_on_the_float64_program():
    """H, the skip projection and the working-set rows were built from the float32-rounded
    points: ADMM converged (residual 1e-15) to that nearby program's optimum and the float64
    certificate stalled at a gap of 1.1e-6 > tol = 1e-6 (SolverError after 50,000
    iterations). Built from the program's own points, float32 certifies what float64 does."""
    from skconvexscore import ConvexScoreMatcher

    X = np.random.default_rng(302).normal(size=(300, 2))
    settings = dict(alpha=0.02, activation="abs", n_patterns=40, random_state=1)
    reference = ConvexScoreMatcher(solver="cvxpy", **settings).fit(X)
    model = ConvexScoreMatcher(solver="first_order", solver_options={"dtype": "float32"},
                               **settings).fit(X)
    assert model.objective_ == pytest.approx(reference.objective_, rel=1e-6)
    assert model.duality_gap_ <= 1e-6 * max(1.0, abs(model.objective_))
