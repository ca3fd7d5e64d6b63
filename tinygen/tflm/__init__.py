"""TensorFlow Lite Micro as tinygen models it: the arena its allocator lays out (replayed
exactly), the flash its kernels take, the ops it implements, and its Python interpreter."""
