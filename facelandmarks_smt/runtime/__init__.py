"""How the network runs: device and threads (`device`), ONNX export and its cache (`export`),
int8 quantisation (`quantize`), which graph a weights file runs as (`graphs`), and one runner per
backend and precision (`backends`). Imports only the layers below it (models, weights, datasets,
geometry); see docs/architecture.md."""
