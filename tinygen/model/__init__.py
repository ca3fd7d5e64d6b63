"""The model and its data: reading Keras, SavedModel and .tflite files (source), the int8
graph (graph), samples and labels (data), int8 quantization (quantize), accuracy (evaluate),
TensorFlow imported lazily (tf), and the bundled example (examples)."""
