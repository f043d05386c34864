"""frontends/onnx*.py: ONNX graphs built here with ``onnx.helper`` are read into the IR and
simulated against ``onnx.reference.ReferenceEvaluator`` (and onnxruntime when it is installed);
unsupported graphs give one-line errors naming the node; IR networks exported with
``save_onnx`` compute the same function and read back to the same network.

Shared networks and images come from ``../shared/data`` (skipped, with the path shown, when it
is absent)."""
from __future__ import annotations

import h5py
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from common.errors import FrontendError
from frontends import load_network, save_network
from frontends.onnx import load_onnx, save_onnx
from ir.network import (AvgPool2D, Conv2D, Domain, Linear, MaxPool2D, Network, Pad2D, ReLU,
                        Reshape, Scale, Transpose)

TOLERANCE = 1e-5         # float32 graphs against the float64 IR, relative to the output scale
ROUND_TRIP_TOLERANCE = 1e-12
DENSE_NETWORKS = {"mnist_784-8-16-10.h5": "mnist/mnist_aigent_500.npz",
                  "mnist_784-50x6-10.h5": "mnist/mnist_aigent_500.npz",
                  "cifar_3072-100-50-25-10.h5": "cifar10/cifar10_test_100.npz",
                  "cifar_3072-50x5-10.h5": "cifar10/cifar10_test_100.npz"}

try:
    import onnxruntime
except ImportError:      # the reference evaluator alone then
    onnxruntime = None


# ---- building graphs -------------------------------------------------------------------------

def const(name: str, values, dtype=np.float32) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(values, dtype=dtype), name)


def ints(name: str, values) -> onnx.TensorProto:
    return const(name, values, np.int64)


def rand(rng, *shape, scale=1.0) -> np.ndarray:
    return (rng.normal(size=shape) * scale).astype(np.float32)


def make_model(nodes, input_shape, initializers=(), opset=13, output="y") -> onnx.ModelProto:
    """A one-input, one-output model; the output's shape comes from running it once."""
    graph = helper.make_graph(nodes, "test", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, list(input_shape))], [helper.make_tensor_value_info(
            output, TensorProto.FLOAT, None)], list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    sample = np.zeros([d if isinstance(d, int) else 1 for d in input_shape], np.float32)
    out = ReferenceEvaluator(model).run(None, {"x": sample})[0]
    dims = [None if i == 0 and isinstance(input_shape[0], str) else d
            for i, d in enumerate(out.shape)]
    model.graph.output[0].CopyFrom(helper.make_tensor_value_info(output, TensorProto.FLOAT, dims))
    onnx.checker.check_model(model)
    return model


def raw_model(nodes, input_shape, output_shape, initializers=()) -> onnx.ModelProto:
    """A model with declared shapes, not run (for graphs the loader must refuse)."""
    graph = helper.make_graph(nodes, "test", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, list(input_shape))], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, list(output_shape))], list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def output_size(model: onnx.ModelProto) -> int:
    """Values per input in the model's output (its declared shape, batch axis excluded)."""
    dims = model.graph.output[0].type.tensor_type.shape.dim
    return int(np.prod([d.dim_value for d in dims[1:]]))


def save(tmp_path, model: onnx.ModelProto, name: str = "net") -> str:
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, str(path))
    return str(path)


def feed_shape(model: onnx.ModelProto) -> list[int]:
    dims = model.graph.input[0].type.tensor_type.shape.dim
    return [d.dim_value if d.HasField("dim_value") else 1 for d in dims]


def onnx_outputs(model: onnx.ModelProto, inputs: np.ndarray) -> list[np.ndarray]:
    """The model's outputs for each input (flat), by every available evaluator."""
    shape = feed_shape(model)
    dtype = np.float64 if model.graph.input[0].type.tensor_type.elem_type == \
        TensorProto.DOUBLE else np.float32
    feeds = [x.reshape(shape).astype(dtype) for x in inputs]
    name = model.graph.input[0].name
    evaluators = [ReferenceEvaluator(model)]
    if onnxruntime is not None:
        evaluators.append(onnxruntime.InferenceSession(model.SerializeToString(),
                                                       providers=["CPUExecutionProvider"]))
    return [np.stack([np.asarray(e.run(None, {name: x})[0]).ravel() for x in feeds])
            for e in evaluators]


def assert_close(expected: np.ndarray, got: np.ndarray, tolerance: float = TOLERANCE) -> None:
    scale = max(1.0, float(np.abs(expected).max()))
    assert expected.shape == got.shape
    assert np.abs(expected - got).max() <= tolerance * scale, np.abs(expected - got).max()


def check_loaded(tmp_path, model, n_inputs: int = 3, seed: int = 0,
                 reference: onnx.ModelProto | None = None) -> Network:
    """Load ``model`` and compare its simulation with ``reference`` (default: the model)."""
    net = load_onnx(save(tmp_path, model))
    rng = np.random.default_rng(seed)
    inputs = rng.uniform(0.0, 1.0, (n_inputs, net.n_inputs)).astype(np.float32)
    assert int(np.prod(feed_shape(model))) == net.n_inputs
    got = net(inputs.astype(np.float64))
    for expected in onnx_outputs(reference or model, inputs):
        assert_close(expected, got)
    return net


def kinds(net: Network) -> list[str]:
    return [type(layer).__name__ for layer in net.layers]


def dense_head(rng, name: str, n_in: int, n_out: int = 4):
    """Gemm ``{name}_in -> y`` with its two initializers."""
    node = helper.make_node("Gemm", [f"{name}_in", f"{name}_W", f"{name}_b"], ["y"], transB=1)
    return node, [const(f"{name}_W", rand(rng, n_out, n_in, scale=0.3)),
                  const(f"{name}_b", rand(rng, n_out))]


# ---- dense ops -------------------------------------------------------------------------------

@pytest.mark.parametrize("trans_b", [0, 1])
@pytest.mark.parametrize("alpha, beta, c_shape", [(1.0, 1.0, (5,)), (0.5, 2.0, (1, 5)),
                                                  (1.0, -1.0, (1,))])
def test_gemm(tmp_path, trans_b, alpha, beta, c_shape):
    rng = np.random.default_rng(1)
    w = rand(rng, 5, 6) if trans_b else rand(rng, 6, 5)
    nodes = [helper.make_node("Gemm", ["x", "W", "C"], ["h"], transB=trans_b, alpha=alpha,
                              beta=beta),
             helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Gemm", ["r", "W2"], ["y"])]
    model = make_model(nodes, [1, 6], [const("W", w), const("C", rand(rng, *c_shape)),
                                       const("W2", rand(rng, 5, 3))])
    net = check_loaded(tmp_path, model)
    assert kinds(net) == ["Linear", "ReLU", "Linear"]
    assert all(edge.patchable for edge in net.edges)
    if alpha == 1.0:
        assert np.array_equal(net.layers[0].weight, (w if trans_b else w.T).astype(np.float64))


def test_matmul_add_folds_the_bias(tmp_path):
    rng = np.random.default_rng(2)
    b1 = rand(rng, 5)
    nodes = [helper.make_node("MatMul", ["x", "W1"], ["m1"]),
             helper.make_node("Add", ["m1", "b1"], ["h"]),
             helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("MatMul", ["r", "W2"], ["m2"]),
             helper.make_node("Add", ["b2", "m2"], ["y"])]       # constant first
    model = make_model(nodes, ["batch", 6], [const("W1", rand(rng, 6, 5)), const("b1", b1),
                                             const("W2", rand(rng, 5, 3)),
                                             const("b2", rand(rng, 3))])
    net = check_loaded(tmp_path, model)
    assert kinds(net) == ["Linear", "ReLU", "Linear"]
    assert np.array_equal(net.layers[0].bias, b1.astype(np.float64))
    assert net.input_shape == (6,)


def test_model_without_batch_axis(tmp_path):
    rng = np.random.default_rng(3)
    nodes = [helper.make_node("MatMul", ["x", "W1"], ["m1"]),
             helper.make_node("Add", ["m1", "b1"], ["h"]),
             helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("MatMul", ["r", "W2"], ["y"])]
    model = make_model(nodes, [12], [const("W1", rand(rng, 12, 7)), const("b1", rand(rng, 7)),
                                     const("W2", rand(rng, 7, 3))])
    net = check_loaded(tmp_path, model)
    assert net.input_shape == (12,)
    assert kinds(net) == ["Linear", "ReLU", "Linear"]


def test_matmul_over_several_rows_and_constant_on_the_left(tmp_path):
    rng = np.random.default_rng(4)
    nodes = [helper.make_node("MatMul", ["x", "W"], ["a"]),          # (1, 3, 4) @ (4, 5)
             helper.make_node("MatMul", ["L", "a"], ["b"]),          # (2, 3) @ (1, 3, 5)
             helper.make_node("Relu", ["b"], ["r"]),
             helper.make_node("Flatten", ["r"], ["f"]),
             helper.make_node("Gemm", ["f", "G"], ["y"], transB=1)]
    model = make_model(nodes, [1, 3, 4], [const("W", rand(rng, 4, 5)), const("L", rand(rng, 2, 3)),
                                          const("G", rand(rng, 2, 10))])
    check_loaded(tmp_path, model)


@pytest.mark.parametrize("constant_first", [False, True])
def test_input_normalization(tmp_path, constant_first):
    """``(x - mean) / std`` (or ``mean - x``) per channel, as VNN-COMP CNNs start."""
    rng = np.random.default_rng(5)
    sub = ["mean", "x"] if constant_first else ["x", "mean"]
    nodes = [helper.make_node("Sub", sub, ["c"]),
             helper.make_node("Div", ["c", "std"], ["n"]),
             helper.make_node("Flatten", ["n"], ["f"]),
             helper.make_node("Gemm", ["f", "W"], ["y"], transB=1)]
    model = make_model(nodes, [1, 2, 3, 3], [
        const("mean", [[[0.25]], [[0.5]]]), const("std", [[[0.5]], [[0.3]]]),
        const("W", rand(rng, 4, 18))])
    net = check_loaded(tmp_path, model)
    # the normalization folds into the dense layer (outputs checked above): edge 1 patchable
    assert kinds(net) == ["Linear"] and net.edge(1).patchable


# ---- convolution, padding, pooling -----------------------------------------------------------

CONV_CASES = {
    "stride1-asymmetric-pads-bias": dict(strides=[1, 1], pads=[0, 1, 2, 1]),
    "stride2-pads-no-bias": dict(strides=[2, 2], pads=[1, 0, 0, 1], bias=False),
    "same-upper-stride2": dict(strides=[2, 2], auto_pad="SAME_UPPER"),
    "same-lower-stride2": dict(strides=[2, 2], auto_pad="SAME_LOWER"),
    "valid-stride12": dict(strides=[1, 2], auto_pad="VALID", bias=False),
}


@pytest.mark.parametrize("case", list(CONV_CASES))
def test_conv(tmp_path, case):
    options = dict(CONV_CASES[case])
    bias = options.pop("bias", True)
    rng = np.random.default_rng(6)
    inputs = ["x", "K", "B"] if bias else ["x", "K"]
    nodes = [helper.make_node("Conv", inputs, ["c"], kernel_shape=[3, 3], **options),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Flatten", ["r"], ["head_in"])]
    inits = [const("K", rand(rng, 3, 2, 3, 3)), const("B", rand(rng, 3))]
    conv = make_model(nodes[:1], [1, 2, 8, 8], inits[:len(inputs) - 1], output="c")
    head, head_inits = dense_head(rng, "head", output_size(conv))
    model = make_model(nodes + [head], [1, 2, 8, 8], inits[:len(inputs) - 1] + head_inits)
    net = check_loaded(tmp_path, model)
    assert kinds(net) == ["Conv2D", "ReLU", "Linear"]
    assert net.layers[0].layout == "NCHW" and net.input_shape == (2, 8, 8)
    if "pads" in options:
        assert net.layers[0].padding == tuple(options["pads"])


def test_pad_folds_into_the_following_conv(tmp_path):
    rng = np.random.default_rng(7)
    nodes = [helper.make_node("Pad", ["x", "pads"], ["p"], mode="constant"),
             helper.make_node("Conv", ["p", "K", "B"], ["c"], pads=[1, 0, 0, 0]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Flatten", ["r"], ["head_in"])]
    head, head_inits = dense_head(rng, "head", 3 * 8 * 7)
    model = make_model(nodes + [head], [1, 2, 6, 6], [
        ints("pads", [0, 0, 1, 2, 0, 0, 2, 1]), const("K", rand(rng, 3, 2, 3, 3)),
        const("B", rand(rng, 3))] + head_inits)
    net = check_loaded(tmp_path, model)
    assert kinds(net) == ["Conv2D", "ReLU", "Linear"]
    assert net.layers[0].padding == (2, 2, 2, 1)


@pytest.mark.parametrize("opset", [10, 13])
def test_pad_before_a_pool_stays_a_pad_layer(tmp_path, opset):
    rng = np.random.default_rng(8)
    pads = [0, 0, 1, 0, 0, 0, 1, 2]
    if opset < 11:
        pad = helper.make_node("Pad", ["x"], ["p"], mode="constant", pads=pads, value=0.0)
        inits = []
    else:
        pad = helper.make_node("Pad", ["x", "pads", "zero"], ["p"])
        inits = [ints("pads", pads), const("zero", 0.0)]
    nodes = [pad, helper.make_node("AveragePool", ["p"], ["a"], kernel_shape=[2, 2],
                                   strides=[2, 2]),
             helper.make_node("Flatten", ["a"], ["head_in"])]
    head, head_inits = dense_head(rng, "head", 2 * 4 * 4)
    net = check_loaded(tmp_path, make_model(nodes + [head], [1, 2, 6, 6], inits + head_inits,
                                            opset=opset))
    assert kinds(net) == ["Pad2D", "AvgPool2D", "Linear"]
    assert net.layers[0].padding == (1, 0, 1, 2)


POOL_CASES = {
    "maxpool-pads": ("MaxPool", dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])),
    "maxpool-asymmetric": ("MaxPool", dict(kernel_shape=[2, 3], strides=[1, 2], pads=[0, 1, 1, 0])),
    "avgpool-exclude-pad": ("AveragePool", dict(kernel_shape=[3, 3], strides=[2, 2],
                                                pads=[1, 0, 1, 0], count_include_pad=0)),
    "avgpool-include-pad": ("AveragePool", dict(kernel_shape=[3, 3], strides=[2, 2],
                                                pads=[1, 0, 1, 0], count_include_pad=1)),
    "avgpool-same-upper": ("AveragePool", dict(kernel_shape=[2, 2], strides=[2, 2],
                                               auto_pad="SAME_UPPER")),
    "maxpool-ceil-mode-no-change": ("MaxPool", dict(kernel_shape=[3, 3], strides=[2, 2],
                                                    ceil_mode=1)),
}


@pytest.mark.parametrize("case", list(POOL_CASES))
def test_pooling(tmp_path, case):
    op, attrs = POOL_CASES[case]
    rng = np.random.default_rng(9)
    pool = make_model([helper.make_node(op, ["x"], ["y"], **attrs)], [1, 2, 7, 7])
    # the pool on a ReLU, so the window maxima are not just the input's
    nodes = [helper.make_node("Conv", ["x", "K"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node(op, ["r"], ["p"], **attrs),
             helper.make_node("Flatten", ["p"], ["head_in"])]
    head, head_inits = dense_head(rng, "head", output_size(pool))
    net = check_loaded(tmp_path, make_model(nodes + [head], [1, 2, 7, 7],
                                            [const("K", rand(rng, 2, 2, 3, 3))] + head_inits))
    layer = net.layers[2]
    assert isinstance(layer, MaxPool2D if op == "MaxPool" else AvgPool2D)
    if op == "AveragePool":
        assert layer.count_include_pad == bool(attrs.get("count_include_pad", 0))


def test_batchnorm_after_conv_folds_and_after_relu_scales(tmp_path):
    rng = np.random.default_rng(10)

    def bn(prefix, channels):
        return [const(f"{prefix}_s", rng.uniform(0.5, 2.0, channels)),
                const(f"{prefix}_b", rand(rng, channels)),
                const(f"{prefix}_m", rand(rng, channels)),
                const(f"{prefix}_v", rng.uniform(0.1, 2.0, channels))]

    nodes = [helper.make_node("Conv", ["x", "K", "B"], ["c"]),
             helper.make_node("BatchNormalization", ["c", "bn1_s", "bn1_b", "bn1_m", "bn1_v"],
                              ["n"], epsilon=1e-3),
             helper.make_node("Relu", ["n"], ["r"]),
             helper.make_node("BatchNormalization", ["r", "bn2_s", "bn2_b", "bn2_m", "bn2_v"],
                              ["n2"]),
             helper.make_node("Flatten", ["n2"], ["f"]),
             helper.make_node("Gemm", ["f", "W"], ["g"], transB=1),
             helper.make_node("BatchNormalization", ["g", "bn3_s", "bn3_b", "bn3_m", "bn3_v"],
                              ["y"])]
    # opset 15: onnx.reference's BatchNormalization for opsets 9-13 uses the batch's own
    # statistics (training mode), unlike the spec and onnxruntime
    model = make_model(nodes, [1, 2, 5, 5], [const("K", rand(rng, 3, 2, 3, 3)),
                                             const("B", rand(rng, 3)),
                                             const("W", rand(rng, 4, 27))]
                       + bn("bn1", 3) + bn("bn2", 3) + bn("bn3", 4), opset=15)
    net = check_loaded(tmp_path, model)
    assert kinds(net) == ["Conv2D", "ReLU", "Linear"]   # BN after the ReLU folds into Gemm


# ---- shapes ----------------------------------------------------------------------------------

def test_reshape_with_zero_and_minus_one(tmp_path):
    rng = np.random.default_rng(11)
    nodes = [helper.make_node("Conv", ["x", "K"], ["c"]),
             helper.make_node("Reshape", ["c", "shape"], ["flat"]),
             helper.make_node("Relu", ["flat"], ["head_in"])]
    head, head_inits = dense_head(rng, "head", 2 * 4 * 4)
    net = check_loaded(tmp_path, make_model(nodes + [head], [1, 1, 6, 6], [
        const("K", rand(rng, 2, 1, 3, 3)), ints("shape", [0, -1])] + head_inits))
    assert kinds(net) == ["Conv2D", "ReLU", "Linear"]


def test_pytorch_shape_gather_unsqueeze_concat_reshape(tmp_path):
    """``x.view(x.size(0), -1)`` as torch.onnx exports it, with a symbolic batch."""
    rng = np.random.default_rng(12)
    nodes = [helper.make_node("Conv", ["x", "K", "B"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Shape", ["r"], ["shape"]),
             helper.make_node("Constant", [], ["zero"], value=numpy_helper.from_array(
                 np.array(0, np.int64))),
             helper.make_node("Gather", ["shape", "zero"], ["n"], axis=0),
             helper.make_node("Unsqueeze", ["n", "axes"], ["n1"]),
             helper.make_node("Concat", ["n1", "minus_one"], ["target"], axis=0),
             helper.make_node("Reshape", ["r", "target"], ["head_in"])]
    head, head_inits = dense_head(rng, "head", 3 * 4 * 4)
    model = make_model(nodes + [head], ["N", 2, 4, 4], [
        const("K", rand(rng, 3, 2, 3, 3)), const("B", rand(rng, 3)), ints("axes", [0]),
        ints("minus_one", [-1])] + head_inits)
    net = check_loaded(tmp_path, model)
    assert net.input_shape == (2, 4, 4)
    assert kinds(net) == ["Conv2D", "ReLU", "Linear"]


def test_nhwc_input_transposed_to_nchw(tmp_path):
    rng = np.random.default_rng(13)
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 3, 1, 2]),
             helper.make_node("Conv", ["t", "K", "B"], ["c"], strides=[2, 2]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Transpose", ["r"], ["back"], perm=[0, 2, 3, 1]),
             helper.make_node("Flatten", ["back"], ["head_in"])]
    head, head_inits = dense_head(rng, "head", 3 * 3 * 3)
    net = check_loaded(tmp_path, make_model(nodes + [head], [1, 7, 7, 2], [
        const("K", rand(rng, 3, 2, 3, 3)), const("B", rand(rng, 3))] + head_inits))
    assert net.input_shape == (7, 7, 2)
    assert kinds(net) == ["Transpose", "Conv2D", "ReLU", "Transpose", "Linear"]
    assert net.layers[0].perm == (2, 0, 1) and net.layers[3].perm == (1, 2, 0)


def test_dropout_identity_squeeze_unsqueeze(tmp_path):
    rng = np.random.default_rng(14)
    nodes = [helper.make_node("Gemm", ["x", "W1", "b1"], ["h"], transB=1),
             helper.make_node("Dropout", ["h"], ["d"]),
             helper.make_node("Relu", ["d"], ["r"]),
             helper.make_node("Identity", ["r"], ["i"]),
             helper.make_node("Unsqueeze", ["i", "axes"], ["u"]),       # (1, 1, 5)
             helper.make_node("Squeeze", ["u", "axes"], ["head_in"])]
    head, head_inits = dense_head(rng, "head", 5)
    net = check_loaded(tmp_path, make_model(nodes + [head], [1, 6], [
        const("W1", rand(rng, 5, 6)), const("b1", rand(rng, 5)), ints("axes", [1])] + head_inits))
    assert kinds(net) == ["Linear", "ReLU", "Linear"]


@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool"])
def test_global_pooling(tmp_path, op):
    rng = np.random.default_rng(18)
    nodes = [helper.make_node("Conv", ["x", "K"], ["c"]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node(op, ["r"], ["g"]),
             helper.make_node("Flatten", ["g"], ["head_in"])]
    head, head_inits = dense_head(rng, "head", 3)
    net = check_loaded(tmp_path, make_model(nodes + [head], [1, 2, 5, 6],
                                            [const("K", rand(rng, 3, 2, 2, 2))] + head_inits))
    assert kinds(net) == ["Conv2D", "ReLU", "AvgPool2D" if op == "GlobalAveragePool" else
                          "MaxPool2D", "Linear"]


def test_transpose_moving_the_batch_axis(tmp_path):
    rng = np.random.default_rng(19)
    nodes = [helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("Transpose", ["r"], ["t"], perm=[2, 1, 0]),     # (4, 3, 1)
             helper.make_node("Flatten", ["t"], ["head_in"], axis=0)]
    head, head_inits = dense_head(rng, "head", 12)
    net = check_loaded(tmp_path, make_model(nodes + [head], [1, 3, 4], head_inits))
    assert kinds(net) == ["ReLU", "Reshape", "Transpose", "Linear"]


def test_model_local_function_is_inlined(tmp_path):
    rng = np.random.default_rng(20)
    function = helper.make_function("local", "DenseRelu", ["a", "w"], ["b"],
                                    [helper.make_node("MatMul", ["a", "w"], ["m"]),
                                     helper.make_node("Relu", ["m"], ["b"])],
                                    [helper.make_opsetid("", 13)])
    head, head_inits = dense_head(rng, "head", 5)
    graph = helper.make_graph(
        [helper.make_node("DenseRelu", ["x", "W"], ["head_in"], domain="local"), head], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [const("W", rand(rng, 6, 5))] + head_inits)
    model = helper.make_model(graph, functions=[function], opset_imports=[
        helper.make_opsetid("", 13), helper.make_opsetid("local", 1)])
    net = check_loaded(tmp_path, model)
    assert kinds(net) == ["Linear", "ReLU", "Linear"]


def test_final_softmax_is_dropped_with_a_note(tmp_path):
    rng = np.random.default_rng(15)
    inits = [const("W", rand(rng, 4, 6)), const("b", rand(rng, 4))]
    logits = make_model([helper.make_node("Gemm", ["x", "W", "b"], ["y"], transB=1)], [1, 6],
                        inits)
    model = make_model([helper.make_node("Gemm", ["x", "W", "b"], ["z"], transB=1),
                        helper.make_node("Softmax", ["z"], ["y"], axis=-1)], [1, 6], inits)
    net = check_loaded(tmp_path, model, reference=logits)
    assert kinds(net) == ["Linear"]
    assert any(note.startswith("final softmax dropped") for note in net.notes)
    assert not any("checker" in note for note in net.notes)


def test_float16_and_float64_initializers(tmp_path):
    rng = np.random.default_rng(16)
    w = rand(rng, 4, 6).astype(np.float16)
    model = make_model([helper.make_node("Cast", ["W16"], ["W"], to=TensorProto.FLOAT),
                        helper.make_node("Gemm", ["x", "W"], ["y"], transB=1)], [1, 6],
                       [const("W16", w, np.float16)])
    net = check_loaded(tmp_path, model)
    assert np.array_equal(net.layers[0].weight, w.astype(np.float64))


def test_load_network_dispatches_onnx(tmp_path):
    rng = np.random.default_rng(17)
    model = make_model([helper.make_node("Gemm", ["x", "W"], ["y"], transB=1)], [1, 3],
                       [const("W", rand(rng, 2, 3))])
    net = load_network(save(tmp_path, model, "my_net"))
    assert net.name == "my_net" and net.domain is None   # ONNX files hold no domain


# ---- refusals --------------------------------------------------------------------------------

def gemm_relu_then(rng, node, extra_inits=(), n_in=4):
    """``x -> Gemm -> h``, then ``node`` (taking ``h``) ending at ``y``."""
    return make_model([helper.make_node("Gemm", ["x", "W"], ["h"], transB=1), node], [1, n_in],
                      [const("W", rand(rng, 4, n_in))] + list(extra_inits))


def assert_refused(tmp_path, model, *fragments) -> str:
    path = save(tmp_path, model, "refused")
    with pytest.raises(FrontendError) as info:
        load_onnx(path)
    message = str(info.value)
    assert "\n" not in message and "refused.onnx" in message
    for fragment in fragments:
        assert fragment in message, message
    return message


@pytest.mark.parametrize("op, attrs", [("Sigmoid", {}), ("Tanh", {}), ("LeakyRelu",
                                                                       {"alpha": 0.1})])
def test_unsupported_activations(tmp_path, op, attrs):
    rng = np.random.default_rng(20)
    model = gemm_relu_then(rng, helper.make_node(op, ["h"], ["y"], name=f"{op}_3", **attrs))
    message = assert_refused(tmp_path, model, f"node '{op}_3' ({op}) is not supported",
                             "supported ops: ")
    assert "Gemm" in message.split("supported ops: ")[1]


def test_unnamed_node_is_named_by_its_index(tmp_path):
    rng = np.random.default_rng(21)
    assert_refused(tmp_path, gemm_relu_then(rng, helper.make_node("Sigmoid", ["h"], ["y"])),
                   "node #1 (Sigmoid) is not supported")


def test_softmax_inside_the_graph(tmp_path):
    rng = np.random.default_rng(22)
    model = make_model([helper.make_node("Gemm", ["x", "W"], ["h"], transB=1),
                        helper.make_node("Softmax", ["h"], ["s"], name="sm"),
                        helper.make_node("Gemm", ["s", "W2"], ["y"], transB=1)], [1, 4],
                       [const("W", rand(rng, 4, 4)), const("W2", rand(rng, 2, 4))])
    assert_refused(tmp_path, model, "node 'sm' (Softmax)", "inside the graph")


def test_dynamic_reshape(tmp_path):
    model = raw_model([helper.make_node("Cast", ["x"], ["shape"], to=TensorProto.INT64),
                       helper.make_node("Reshape", ["x", "shape"], ["y"], name="dyn")], [2], [1, 2])
    assert_refused(tmp_path, model, "node 'dyn' (Reshape)", "dynamic shape")


def test_dynamic_input_dimension(tmp_path):
    model = raw_model([helper.make_node("Relu", ["x"], ["y"])], [1, "H"], [1, "H"])
    assert_refused(tmp_path, model, "dynamic dimension 'H' at axis 1")


def test_residual_add(tmp_path):
    rng = np.random.default_rng(23)
    model = make_model([helper.make_node("Gemm", ["x", "W"], ["h"], transB=1),
                        helper.make_node("Relu", ["h"], ["r"]),
                        helper.make_node("Gemm", ["r", "W2"], ["g"], transB=1),
                        helper.make_node("Add", ["g", "h"], ["y"], name="skip")], [1, 4],
                       [const("W", rand(rng, 4, 4)), const("W2", rand(rng, 4, 4))])
    assert_refused(tmp_path, model, "residual / branching graphs are not supported",
                   "node 'skip' (Add) adds two computed tensors")


def test_tensor_used_twice(tmp_path):
    rng = np.random.default_rng(24)
    model = raw_model([helper.make_node("Gemm", ["x", "W"], ["h"], transB=1, name="g1"),
                       helper.make_node("Relu", ["h"], ["y"], name="relu"),
                       helper.make_node("Neg", ["h"], ["unused"], name="neg")], [1, 4], [1, 4],
                      [const("W", rand(rng, 4, 4))])
    assert_refused(tmp_path, model, "residual / branching graphs are not supported",
                   "tensor 'h' feeds 2 nodes", "node 'relu' (Relu)", "node 'neg' (Neg)")


@pytest.mark.parametrize("attrs, kernel, fragment", [
    (dict(group=2), (4, 1, 3, 3), "group = 2"),
    (dict(dilations=[2, 2]), (4, 2, 3, 3), "dilations [2, 2]")])
def test_conv_group_and_dilation(tmp_path, attrs, kernel, fragment):
    rng = np.random.default_rng(25)
    model = make_model([helper.make_node("Conv", ["x", "K"], ["y"], name="conv", **attrs)],
                       [1, 2, 7, 7], [const("K", rand(rng, *kernel))])
    assert_refused(tmp_path, model, "node 'conv' (Conv)", fragment)


def test_ceil_mode_that_changes_the_size(tmp_path):
    model = make_model([helper.make_node("MaxPool", ["x"], ["y"], name="pool", kernel_shape=[2, 2],
                                         strides=[2, 2], ceil_mode=1)], [1, 1, 7, 7])
    assert_refused(tmp_path, model, "node 'pool' (MaxPool)", "ceil_mode")


def test_maxpool_indices_output(tmp_path):
    model = raw_model([helper.make_node("MaxPool", ["x"], ["p", "idx"], name="pool",
                                        kernel_shape=[2, 2]),
                       helper.make_node("Cast", ["idx"], ["y"], to=TensorProto.FLOAT)],
                      [1, 1, 4, 4], [1, 1, 3, 3])
    assert_refused(tmp_path, model, "node 'pool' (MaxPool)")


def test_unreadable_file(tmp_path):
    path = tmp_path / "broken.onnx"
    path.write_bytes(b"\x08\x07not a protobuf at all\xff\xff")
    with pytest.raises(FrontendError, match="broken.onnx: cannot read as ONNX"):
        load_onnx(path)


# ---- export ----------------------------------------------------------------------------------

def exported(tmp_path, net: Network, name: str = "exported") -> tuple[onnx.ModelProto, str]:
    path = tmp_path / f"{name}.onnx"
    save_onnx(net, path)
    return onnx.load(str(path)), str(path)


def assert_same_layers(a: Network, b: Network) -> None:
    assert kinds(a) == kinds(b)
    for x, y in zip(a.layers, b.layers):
        for name in ("weight", "bias", "mul", "add"):
            if hasattr(x, name):
                assert getattr(x, name).tobytes() == getattr(y, name).tobytes()


@pytest.mark.parametrize("model_file", list(DENSE_NETWORKS))
def test_export_shared_dense_networks(tmp_path, shared_data, model_file):
    net = load_network(shared_data / "models" / model_file)
    with np.load(shared_data / DENSE_NETWORKS[model_file]) as data:
        images = data["x"][:20]
    model, path = exported(tmp_path, net)
    assert model.graph.initializer[0].data_type == TensorProto.FLOAT
    expected = net(images.astype(np.float64))
    for got in onnx_outputs(model, images):
        assert_close(expected, got)
    back = load_onnx(path)
    assert_same_layers(net, back)
    assert back.input_shape == net.input_shape and back.notes == ()


def test_export_float64_network_is_double_and_exact(tmp_path):
    rng = np.random.default_rng(30)
    net = Network((Linear(rng.normal(size=(5, 4)), rng.normal(size=5)), ReLU(),
                   Linear(rng.normal(size=(3, 5)), rng.normal(size=3))), Domain.box(4))
    model, path = exported(tmp_path, net)
    assert {t.data_type for t in model.graph.initializer} == {TensorProto.DOUBLE}
    inputs = rng.uniform(size=(4, 4))
    assert_close(net(inputs), onnx_outputs(model, inputs)[0], 1e-12)
    assert_same_layers(net, load_onnx(path))


def keras_cnn(path) -> Network:
    """The shared 4-conv MNIST CNN as the Keras frontend lowers it (NHWC), from its HDF5."""
    with h5py.File(path, "r") as f:
        group = f["model_weights/clf"]

        def arrays(name):
            return (np.asarray(group[f"{name}/clf/{name}/kernel:0"], dtype=np.float64),
                    np.asarray(group[f"{name}/clf/{name}/bias:0"], dtype=np.float64))

        layers = []
        for block in (("c1", "c2"), ("c3", "c4")):
            for name in block:
                kernel, bias = arrays(name)
                layers += [Conv2D(kernel.transpose(3, 2, 0, 1), bias, (1, 1), (1, 1, 1, 1), "NHWC"),
                           ReLU()]
            layers.append(MaxPool2D((2, 2), (2, 2), layout="NHWC"))
        w1, b1 = arrays("d1")
        w2, b2 = arrays("d2")
    layers += [Reshape((784,)), Linear(w1.T, b1), ReLU(), Linear(w2.T, b2)]
    return Network(tuple(layers), Domain.box(784), (28, 28, 1), "mnist_cnn")


def test_export_nhwc_cnn(tmp_path, shared_data):
    net = keras_cnn(shared_data / "models" / "mnist_cnn_4conv.h5")
    with np.load(shared_data / "mnist" / "mnist_aigent_500.npz") as data:
        images, labels = data["x"][:40].astype(np.float64), data["y"][:40]
    expected = net(images)
    assert np.mean(expected.argmax(axis=1) == labels) >= 0.9     # the network read right
    model, path = exported(tmp_path, net)
    ops = [node.op_type for node in model.graph.node]
    assert ops.count("Transpose") == 2          # one pair around the four convolutions
    for got in onnx_outputs(model, images[:3]):
        assert_close(expected[:3], got)
    if onnxruntime is not None:     # all 40 images: fast enough there
        session = onnxruntime.InferenceSession(model.SerializeToString(),
                                               providers=["CPUExecutionProvider"])
        got = np.concatenate([session.run(None, {"input": x.reshape(1, 28, 28, 1).astype(
            np.float32)})[0] for x in images])
        assert_close(expected, got)
    back = load_onnx(path)
    assert back.input_shape == net.input_shape and back.output_shape == net.output_shape
    assert kinds(back)[0] == "Transpose" and "Conv2D" in kinds(back)
    assert_close(expected, back(images), ROUND_TRIP_TOLERANCE)


def every_layer_network(rng) -> Network:
    """One of each IR layer kind, NHWC and NCHW, with float32-representable values."""
    def f32(*shape):
        return rng.normal(size=shape).astype(np.float32).astype(np.float64)

    layers = (Scale(f32(6 * 6 * 2), f32(6 * 6 * 2)),
              Pad2D((1, 0, 0, 2), "NHWC"),
              Conv2D(f32(3, 2, 3, 3), f32(3), (2, 1), (1, 0, 1, 1), "NHWC"),
              ReLU(),
              Pad2D((0, 1, 1, 0), "NHWC"),       # on the tensor held in NCHW for the pool
              AvgPool2D((2, 2), (1, 1), (1, 1, 0, 0), "NHWC", count_include_pad=False),
              Transpose((2, 0, 1)),
              Pad2D((0, 1, 1, 0), "NCHW"),
              MaxPool2D((2, 2), (1, 2), (1, 0, 0, 1), "NCHW"),
              AvgPool2D((2, 2), (1, 1), (1, 1, 1, 1), "NCHW", count_include_pad=True),
              Reshape((3, 42)),
              Linear(f32(7, 126), f32(7)),
              ReLU(),
              Linear(f32(3, 7), f32(3)))
    return Network(layers, Domain.box(72), (6, 6, 2), "every_layer")


def test_export_every_layer_kind(tmp_path):
    rng = np.random.default_rng(31)
    net = every_layer_network(rng)
    model, path = exported(tmp_path, net)
    ops = [node.op_type for node in model.graph.node]
    # one Transpose to NCHW for the NHWC windows, which the IR's Transpose then keeps
    assert ops.count("Transpose") == 1 and ops.count("Pad") == 3
    assert {t.data_type for t in model.graph.initializer
            if t.data_type != TensorProto.INT64} == {TensorProto.FLOAT}
    inputs = rng.uniform(size=(3, 72))
    expected = net(inputs)
    for got in onnx_outputs(model, inputs):
        assert_close(expected, got)
    back = load_onnx(path)
    assert back.input_shape == net.input_shape
    assert_close(expected, back(inputs), ROUND_TRIP_TOLERANCE)


def test_onnx_cnn_round_trip(tmp_path):
    rng = np.random.default_rng(32)
    nodes = [helper.make_node("Conv", ["x", "K", "B"], ["c"], strides=[2, 2], pads=[1, 0, 1, 2]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("AveragePool", ["r"], ["a"], kernel_shape=[2, 2], pads=[1, 1, 0, 0],
                              count_include_pad=1),
             helper.make_node("Flatten", ["a"], ["head_in"])]
    head, head_inits = dense_head(rng, "head", 3 * 4 * 4)
    net = check_loaded(tmp_path, make_model(nodes + [head], [1, 2, 7, 7], [
        const("K", rand(rng, 3, 2, 3, 3)), const("B", rand(rng, 3))] + head_inits))
    _, path = exported(tmp_path, net, "round_trip")
    back = load_onnx(path)
    assert_same_layers(net, back)
    inputs = rng.uniform(size=(3, net.n_inputs))
    assert_close(net(inputs), back(inputs), ROUND_TRIP_TOLERANCE)


def test_save_network_by_suffix(tmp_path):
    rng = np.random.default_rng(33)
    net = Network((Linear(rng.normal(size=(3, 4)), rng.normal(size=3)), ReLU(),
                   Linear(rng.normal(size=(2, 3)), rng.normal(size=2))), Domain.box(4, -1.0, 2.0))
    for suffix in (".onnx", ".nnir", ".nnet"):
        save_network(net, tmp_path / f"net{suffix}")
        back = load_network(tmp_path / f"net{suffix}")
        assert_same_layers(net, back)
    assert np.array_equal(load_network(tmp_path / "net.nnet").domain.lower, net.domain.lower)
    with pytest.raises(FrontendError, match=r"net\.txt: cannot write the format '\.txt'; "
                                            r"supported: \.onnx, \.nnir, \.nnet"):
        save_network(net, tmp_path / "net.txt")


def test_fold_scales_keeps_the_function_and_only_folds_into_dense_layers():
    from frontends.folding import fold_scales
    from ir.layers import Conv2D, Reshape, Scale
    rng = np.random.default_rng(5)
    scale = Scale(rng.uniform(0.5, 2, 8), rng.normal(size=8))
    dense = [scale, Reshape((8,)), Linear(rng.normal(size=(3, 8)), rng.normal(size=3))]
    folded = fold_scales(dense)
    assert [type(layer).__name__ for layer in folded] == ["Reshape", "Linear"]
    conv = [Scale(rng.uniform(0.5, 2, 8), rng.normal(size=8)),
            Conv2D(rng.normal(size=(1, 2, 2, 2)), np.zeros(1))]
    assert fold_scales(conv)[0] is conv[0]
    from ir.network import Network
    x = rng.uniform(size=(5, 8))
    np.testing.assert_allclose(Network(tuple(folded), None, (8,))(x),
                               Network(tuple(dense), None, (8,))(x), atol=1e-12)
