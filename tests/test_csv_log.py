from molgen.training.csv_log import ResumableCSVLogger, rows_before


def _write_log(path):
    path.write_text("epoch,step,train/loss,val/loss\n0,49,1.5,\n0,99,1.4,\n0,99,,1.45\n1,149,1.3,\n1,199,1.2,\n")


def test_rows_before_keeps_the_steps_below_the_checkpoint(tmp_path):
    log = tmp_path / "metrics.csv"
    _write_log(log)
    header, rows = rows_before(log, 150)
    assert header == ["epoch", "step", "train/loss", "val/loss"]
    assert [(row["step"], row["train/loss"], row["val/loss"]) for row in rows] == [
        ("49", "1.5", ""),
        ("99", "1.4", ""),
        ("99", "", "1.45"),
        ("149", "1.3", ""),
    ]


def test_a_resumed_log_continues_and_a_new_one_starts_empty(tmp_path):
    (tmp_path / "logs").mkdir()
    _write_log(tmp_path / "logs" / "metrics.csv")
    resumed = ResumableCSVLogger(tmp_path, name="logs", version="", resume_step=100)
    resumed.log_metrics({"train/loss": 1.1, "lr": 1e-4}, step=100)  # a new column rewrites the header
    resumed.save()
    lines = (tmp_path / "logs" / "metrics.csv").read_text().splitlines()
    assert lines[0] == "epoch,lr,step,train/loss,val/loss"
    assert lines[1:] == ["0,,49,1.5,", "0,,99,1.4,", "0,,99,,1.45", ",0.0001,100,1.1,"]

    fresh = ResumableCSVLogger(tmp_path, name="logs", version="", resume_step=None)
    fresh.log_metrics({"train/loss": 2.0}, step=0)
    fresh.save()
    assert (tmp_path / "logs" / "metrics.csv").read_text().splitlines() == ["step,train/loss", "0,2.0"]
