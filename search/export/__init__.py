"""From a trained PyTorch network to a verified, self-describing model in ``models/``: one export
function for every network (``search.export.onnx_export.export_model``), the model card it writes,
and INT8 static quantization where it pays."""
