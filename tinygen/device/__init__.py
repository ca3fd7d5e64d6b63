"""Everything on the wire to a board: the TG1 line protocol, the serial monitor, the MLPerf
Tiny DUT client, QEMU as a board, and the flash runners. Nothing here imports TensorFlow."""
