"""train_editor: models trained on the training sets — the LLM vocabulary extension with AutoCut's two stages,
and the SSMP shot-sequence model — tracked in MLflow and scored on the benchmark."""
