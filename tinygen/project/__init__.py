"""The firmware project around a model: the model as C (codegen), the TFLM or AOT project
rendered from templates/ with the board's port from firmware/ (render), and its build (make)."""
