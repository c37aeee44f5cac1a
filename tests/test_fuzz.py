"""Property-based fuzzing: bad settings and magic lines give clear messages, never tracebacks."""

from __future__ import annotations

import dataclasses
import shlex

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from IPython.core.error import UsageError

from jupyter_training.magics import TrainingMagics
from jupyter_training.spec import JobSpec, SpecError

ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
FIELDS = [field.name for field in dataclasses.fields(JobSpec)]


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=10), ANY_JSON, max_size=4))
def test_jobspec_from_any_json_is_valid_or_one_clear_error(data):
    try:
        spec = JobSpec.from_dict(data)
    except SpecError as err:
        assert str(err).startswith(f"{err.field}: ")
        assert len(str(err)) < 600
    else:
        assert JobSpec.from_dict(spec.to_dict()) == spec


FLAGS = [
    "-f",
    "--framework",
    "-w",
    "--workers",
    "-g",
    "--gpus",
    "--nproc-per-worker",
    "-b",
    "--backend",
    "--name",
    "--env",
    "--max-restarts",
    "--timeout",
    "--files",
    "--cpu",
    "--memory",
    "--image",
    "--namespace",
    "--api",
    "--runtime",
    "--node-selector",
    "--pip",
    "--queue",
    "--volume",
    "-o",
    "--out",
    "--progress",
    "--bogus",
]
TOKENS = st.sampled_from(FLAGS) | st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(TOKENS, max_size=6))
def test_magic_lines_never_raise_our_tracebacks(ip, tokens):
    line = " ".join(shlex.quote(t) for t in tokens) + " --dry-run"
    magics = TrainingMagics(ip)
    try:
        magics.train_distributed(line, "pass")
    except UsageError as err:
        assert str(err)
    except SystemExit:
        pass  # argparse's --help path
