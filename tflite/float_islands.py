"""int8 files that XNNPACK runs whole: the ops it has no int8 kernel for kept in float ("float islands").

XNNPACK has no int8 kernel for RSQRT (the norms), SOFTMAX and SQUARED_DIFFERENCE (Keras' LayerNormalization),
and refuses an int8 ADD / SUB / MUL whose scales are too far apart. Left in int8, TFLite's reference kernels
run them, each one splitting XNNPACK's graph, with a hop out and back in (mobilevitv2_050: 31 partitions;
mobilevit_xxs: 52, and its int8 file 2.7x slower than its float32 one). Kept in float, between a DEQUANTIZE
and a QUANTIZE that XNNPACK also runs: one partition.

Every int8 file, post-training or quantization-aware, is quantized as TFLiteConverter quantizes it, every op
in int8; ``float_islands_in_quantized`` then turns those ops of the finished file into float ops, reading and
writing the same int8 tensors. As accurate as TFLite's int8 kernels on them (the same ranges in and out), though
not the same bits. (Quantizing again with those ops on the quantizer's denylist gave the same logit error and
speed, with a second quantization for each scale XNNPACK refused.)

MobileViT v1's attention products (BATCH_MATMUL of two activations) stay in int8: XNNPACK runs an int8
BATCH_MATMUL whose right-hand input has zero point 0, and TFLiteConverter gives activations any zero point,
so that input is requantized to zero point 0 first (a QUANTIZE from int8 to int8, which XNNPACK runs), over
the same range. Kept in float instead, they made mobilevit_xxs's int8 file 7% slower and no more accurate
(benchmarks/int8_float_islands.py).
"""

import numpy as np

from .flatbuffer import model_bytes, model_object

# SQUARED_DIFFERENCE is Keras' LayerNormalization's (v1).
FLOAT_ISLAND_OPS = ("RSQRT", "SOFTMAX", "SQUARED_DIFFERENCE")

# XNNPACK's int8 ADD / SUB take each input's scale over the output's in [2^-10, 2^8), its MUL the product of
# the inputs' scales over the output's in [2^-16, 2^8) (xnnpack_delegate.cc); outside, TFLite's kernel runs the op.
XNNPACK_SCALE_RATIOS = {"ADD": (2.0 ** -10, 2.0 ** 8), "SUB": (2.0 ** -10, 2.0 ** 8), "MUL": (2.0 ** -16, 2.0 ** 8)}


def float_islands_in_quantized(content, island_ops=FLOAT_ISLAND_OPS):
    """int8 ``.tflite`` bytes with every ``island_ops`` op, and every element-wise op whose scales XNNPACK
    refuses, turned into its float op: DEQUANTIZE on each int8 input (a constant input is stored dequantized),
    QUANTIZE back to the int8 output with its scale and zero point; islands that feed each other pass floats.
    The same ranges in and out, so the file is as accurate as with TFLite's int8 kernels, though not the same
    bits. An int8 BATCH_MATMUL reads its right-hand input requantized to zero point 0. The rest of the file is
    untouched. ``island_ops``: the ops kept in float (benchmarks/int8_float_islands.py adds BATCH_MATMUL)."""
    from tensorflow.lite.python import schema_py_generated as schema

    model = model_object(content)
    graph = model.subgraphs[0]
    names = _builtin_names()

    def op_name(op):
        code = model.operatorCodes[op.opcodeIndex]
        return names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "CUSTOM")

    def opcode_index(name):
        builtin = getattr(schema.BuiltinOperator, name)
        for index, code in enumerate(model.operatorCodes):
            if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin:
                return index
        code = schema.OperatorCodeT()
        code.builtinCode, code.deprecatedBuiltinCode, code.version = builtin, min(builtin, 127), 2
        model.operatorCodes.append(code)
        return len(model.operatorCodes) - 1

    def per_tensor_int8(index):
        tensor = graph.tensors[index]
        quantization = tensor.quantization
        return (tensor.type == schema.TensorType.INT8 and quantization is not None
                and quantization.scale is not None and len(quantization.scale) == 1)

    def float_twin(index, values=None):
        """A float32 tensor shaped as tensor ``index``: empty, or a constant holding ``values``."""
        tensor, twin = graph.tensors[index], schema.TensorT()
        twin.name = tensor.name + b"/float"
        twin.shape, twin.shapeSignature, twin.hasRank = tensor.shape, tensor.shapeSignature, tensor.hasRank
        twin.type, twin.buffer = schema.TensorType.FLOAT32, 0
        if values is not None:
            buffer = schema.BufferT()
            buffer.data = np.frombuffer(values.astype("<f4").tobytes(), np.uint8)
            model.buffers.append(buffer)
            twin.buffer = len(model.buffers) - 1
        graph.tensors.append(twin)
        return len(graph.tensors) - 1

    def constant(index):
        data = model.buffers[graph.tensors[index].buffer].data
        return None if data is None or len(data) == 0 else np.asarray(data, np.uint8).view(np.int8)

    def at_zero_point_0(index):
        """Tensor ``index`` (per-tensor int8) requantized to zero point 0 over the same range, made once."""
        if index not in symmetric:
            tensor = graph.tensors[index]
            scale, zero_point = float(tensor.quantization.scale[0]), int(tensor.quantization.zeroPoint[0])
            low, high = scale * (-128 - zero_point), scale * (127 - zero_point)
            twin = schema.TensorT()
            twin.name = tensor.name + b"/zero_point_0"
            twin.shape, twin.shapeSignature, twin.hasRank = tensor.shape, tensor.shapeSignature, tensor.hasRank
            twin.type, twin.buffer = schema.TensorType.INT8, 0
            twin.quantization = schema.QuantizationParametersT()
            twin.quantization.scale, twin.quantization.zeroPoint = [max(-low / 128, high / 127)], [0]
            graph.tensors.append(twin)
            symmetric[index] = len(graph.tensors) - 1
            source = float_of.get(index, index)  # an island's output is requantized from its float value
            operators.append(_operator(opcode_index("QUANTIZE"), source, symmetric[index]))
        return symmetric[index]

    refused = set(scales_xnnpack_refuses(content))
    operators, float_of, requantized = [], {}, {}  # float_of: an island's int8 output -> its float value
    symmetric = {}  # an int8 tensor -> its copy at zero point 0
    for op in graph.operators:
        if op_name(op) == "BATCH_MATMUL" and op_name(op) not in island_ops \
                and all(per_tensor_int8(i) for i in op.inputs):
            right = op.inputs[1]
            if graph.tensors[right].quantization.zeroPoint[0] != 0:
                op.inputs[1] = at_zero_point_0(right)
        outputs = [graph.tensors[i].name.decode("utf-8") for i in op.outputs]
        chosen = op_name(op) in island_ops or any(name in refused for name in outputs)
        tensors = [i for i in list(op.inputs) + list(op.outputs) if i >= 0]
        quantized = [i for i in tensors if per_tensor_int8(i)]
        per_channel = [i for i in tensors if graph.tensors[i].type == schema.TensorType.INT8 and i not in quantized]
        if not chosen or not quantized or per_channel:  # (an int8 op with per-channel scales is left as it is)
            operators.append(op)
            continue
        for position, index in enumerate(op.inputs):
            if index < 0 or not per_tensor_int8(index):
                continue
            if index in float_of:  # another island's output: read in float, not through int8
                op.inputs[position] = float_of[index]
                continue
            values = constant(index)
            if values is not None:
                quantization = graph.tensors[index].quantization
                op.inputs[position] = float_twin(
                    index, (values.astype(np.float32) - quantization.zeroPoint[0]) * quantization.scale[0])
                continue
            op.inputs[position] = float_twin(index)
            operators.append(_operator(opcode_index("DEQUANTIZE"), index, op.inputs[position]))
        operators.append(op)
        for position, index in enumerate(op.outputs):
            if per_tensor_int8(index):
                op.outputs[position] = float_of[index] = float_twin(index)
                requantized[index] = _operator(opcode_index("QUANTIZE"), op.outputs[position], index)
                operators.append(requantized[index])
    # An island's int8 output that only other islands read (a norm's ADD, read by its RSQRT) is not written at all.
    read = {i for op in operators for i in op.inputs} | set(graph.outputs)
    operators = [op for op in operators if not any(op is requantized.get(i) and i not in read for i in op.outputs)]
    graph.operators = operators
    return model_bytes(model)


def _operator(opcode_index, source, target):
    from tensorflow.lite.python import schema_py_generated as schema

    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = opcode_index, [source], [target]
    return op


def _builtin_names():
    """TFLite's builtin op codes and their names (``CONV_2D``, ...), from its schema."""
    from tensorflow.lite.python import schema_py_generated as schema

    return {code: name for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")}


def graph_ops(content):
    """``(op name, [(input tensor name, scale)], [(output tensor name, scale)])`` of the main graph; the scale
    is None for a float tensor, or a per-channel one."""
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.Model.GetRootAsModel(bytearray(content), 0)
    op_names = _builtin_names()
    codes = [model.OperatorCodes(i) for i in range(model.OperatorCodesLength())]
    graph = model.Subgraphs(0)

    def tensor(index):
        quantization = graph.Tensors(index).Quantization()
        scale = quantization.Scale(0) if quantization is not None and quantization.ScaleLength() == 1 else None
        return graph.Tensors(index).Name().decode("utf-8"), scale

    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = codes[op.OpcodeIndex()]
        yield (op_names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "CUSTOM"),
               [tensor(op.Inputs(j)) for j in range(op.InputsLength()) if op.Inputs(j) >= 0],
               [tensor(op.Outputs(j)) for j in range(op.OutputsLength())])


def scales_xnnpack_refuses(content):
    """The output names of the int8 element-wise ops of ``.tflite`` bytes whose scales XNNPACK refuses."""
    refused = []
    for name, inputs, outputs in graph_ops(content):
        if name not in XNNPACK_SCALE_RATIOS or len(inputs) != 2 or outputs[0][1] is None:
            continue
        scales = [scale for _, scale in inputs]
        if None in scales:
            continue
        low, high = XNNPACK_SCALE_RATIOS[name]
        ratios = [scales[0] * scales[1] / outputs[0][1]] if name == "MUL" else [s / outputs[0][1] for s in scales]
        if not all(low <= ratio < high for ratio in ratios):
            refused.append(outputs[0][0])
    return refused
