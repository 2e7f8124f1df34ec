import pytest

from hyperrep.analysis.projection import ProjectionConfig
from hyperrep.encoder.config import EncoderConfig
from hyperrep.pipeline import STAGES, PipelineConfig, run_pipeline
from hyperrep.workspace import Workspace
from hyperrep.zoo.config import ZooConfig


def tiny_config() -> PipelineConfig:
    """A pipeline of 12 digits models x 3 checkpoints with a 2-epoch encoder: seconds on a CPU."""
    return PipelineConfig(
        zoo=ZooConfig(dataset="digits", architecture="cnn-digits", n_models=12, epochs=2),
        encoder=EncoderConfig(epochs=2, d_model=32, n_layers=1, latent_dim=8, projection_dim=8),
        projection=ProjectionConfig(n_neighbors=5, min_cluster_size=3),
    )


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory):
    """Run the tiny pipeline once; return its workspace, its projection and each stage's progress calls."""
    workspace = Workspace(tmp_path_factory.mktemp("pipeline") / "demo")
    calls: dict[str, list[tuple[int, int]]] = {}

    def stage_progress(stage: str):
        calls[stage] = []
        return lambda done, total, message: calls[stage].append((done, total))

    projection = run_pipeline(workspace, tiny_config(), progress=stage_progress)
    return workspace, projection, calls


def test_pipeline_builds_every_artefact(pipeline_run):
    workspace, projection, _ = pipeline_run
    assert len(projection.table) == 12 * 3
    assert (workspace.embeddings_dir / "default.parquet").is_file()
    assert (workspace.reports_dir / "report.csv").is_file()


def test_pipeline_reports_every_stage(pipeline_run):
    calls = pipeline_run[2]
    assert list(calls) == list(STAGES)
    assert calls["project"] == [(0, 1), (1, 1)]
    for stage, stage_calls in calls.items():
        assert stage_calls[0][0] == 0, stage


def test_pipeline_second_run_reuses(pipeline_run):
    workspace = pipeline_run[0]
    assert run_pipeline(workspace, tiny_config()).reused
