from hyperrep.analysis.projection import ProjectionConfig
from hyperrep.encoder.config import EncoderConfig
from hyperrep.pipeline import PipelineConfig, run_pipeline
from hyperrep.workspace import Workspace
from hyperrep.zoo.config import ZooConfig


def tiny_config() -> PipelineConfig:
    """A pipeline of 12 digits models x 3 checkpoints with a 2-epoch encoder: seconds on a CPU."""
    return PipelineConfig(
        zoo=ZooConfig(dataset="digits", architecture="cnn-digits", n_models=12, epochs=2),
        encoder=EncoderConfig(epochs=2, d_model=32, n_layers=1, latent_dim=8, projection_dim=8),
        projection=ProjectionConfig(n_neighbors=5, min_cluster_size=3),
    )


def test_pipeline_builds_every_artefact(tmp_path):
    workspace = Workspace(tmp_path / "demo")
    projection = run_pipeline(workspace, tiny_config())
    assert len(projection.table) == 12 * 3
    assert (workspace.embeddings_dir / "default.parquet").is_file()
    assert (workspace.reports_dir / "report.csv").is_file()


def test_pipeline_second_run_reuses(tmp_path):
    workspace = Workspace(tmp_path / "demo")
    run_pipeline(workspace, tiny_config())
    assert run_pipeline(workspace, tiny_config()).reused
