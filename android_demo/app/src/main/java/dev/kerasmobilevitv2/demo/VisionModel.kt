package dev.kerasmobilevitv2.demo

import android.content.Context
import android.os.SystemClock
import dev.kerasmobilevitv2.core.Detections
import dev.kerasmobilevitv2.core.Frame
import dev.kerasmobilevitv2.core.LatencyStats
import dev.kerasmobilevitv2.core.ModelFacts
import dev.kerasmobilevitv2.core.Palette
import dev.kerasmobilevitv2.core.Postprocessor
import dev.kerasmobilevitv2.core.Preprocessor
import dev.kerasmobilevitv2.core.SegmentationMask
import dev.kerasmobilevitv2.core.TfliteMetadata
import java.io.Closeable
import java.io.FileInputStream
import java.nio.ByteBuffer
import java.nio.ByteOrder
import java.nio.MappedByteBuffer
import java.nio.channels.FileChannel
import org.tensorflow.lite.DataType
import org.tensorflow.lite.Delegate
import org.tensorflow.lite.Interpreter
import org.tensorflow.lite.Tensor
import org.tensorflow.lite.gpu.CompatibilityList
import org.tensorflow.lite.gpu.GpuDelegate
import org.tensorflow.lite.nnapi.NnApiDelegate

enum class Backend(val label: String) { CPU("CPU (XNNPACK)"), GPU("GPU"), NNAPI("NNAPI") }

/** What the model made of one upright frame; boxes and masks are in the frame's pixels. */
sealed class Analysis(val frameWidth: Int, val frameHeight: Int, val inferenceMs: Double) {
    class Classes(val top: List<Postprocessor.Prediction>, width: Int, height: Int, ms: Double) :
        Analysis(width, height, ms)

    class Boxes(val detections: List<Detections.Detection>, width: Int, height: Int, ms: Double) :
        Analysis(width, height, ms)

    /** [overlay]: the mask's ARGB pixels to draw over the frame (classes in the palette's colours). */
    class Mask(val mask: SegmentationMask, val shares: List<SegmentationMask.ClassShare>, val overlay: IntArray,
               width: Int, height: Int, ms: Double) : Analysis(width, height, ms)
}

/**
 * The exported model on LiteRT's Interpreter, whatever its task: the task, input size, preprocessing, class
 * names and what the file outputs come from its metadata ([TfliteMetadata]); the input and output types and
 * quantization from its tensors. Every call must come from one thread.
 */
class VisionModel private constructor(
    private val interpreter: Interpreter,
    private val delegate: Delegate?,
    val facts: ModelFacts,
    val backend: Backend,
    val threads: Int,
    /** Why the delegate that was asked for is not in use, or null. */
    val fallbackReason: String?,
) : Closeable {
    private val input = interpreter.getInputTensor(0)
    private val inputBuffer = ByteBuffer.allocateDirect(input.numBytes()).order(ByteOrder.nativeOrder())

    /** A classifier's or segmenter's one output. */
    private val output: Tensor? = if (facts.task == ModelFacts.Task.DETECTION) null else interpreter.getOutputTensor(0)
    private val outputBuffer = output?.let { ByteBuffer.allocateDirect(it.numBytes()).order(ByteOrder.nativeOrder()) }

    /**
     * A detector's four outputs by their signature names (TFLite_Detection_PostProcess's boxes, classes, scores
     * and number of detections), each as large as the file's most detections.
     */
    private val detectionBuffers: Map<String, ByteBuffer> =
        if (facts.task != ModelFacts.Task.DETECTION) {
            emptyMap()
        } else {
            mapOf("boxes" to 4 * facts.maxDetections, "classes" to facts.maxDetections,
                "scores" to facts.maxDetections, "num_detections" to 1)
                .mapValues { (_, floats) -> ByteBuffer.allocateDirect(4 * floats).order(ByteOrder.nativeOrder()) }
        }

    /** The file's signature and its input's name (a detector runs by signature, its outputs named). */
    private val signature: String = interpreter.signatureKeys.first()
    private val signatureInput: String = interpreter.getSignatureInputs(signature).first()

    /** Inference time of the last 100 frames (the interpreter's run only). */
    val latency = LatencyStats(100)

    init {
        val shape = input.shape()
        require(shape.contentEquals(intArrayOf(1, facts.inputHeight, facts.inputWidth, 3))) {
            "the model's input is ${shape.contentToString()} but its metadata says " +
                "${facts.inputHeight}x${facts.inputWidth}x3"
        }
        if (facts.task == ModelFacts.Task.DETECTION) {
            Detections.checkDetector(facts)
            val names = interpreter.getSignatureOutputs(signature).toSet()
            require(names.containsAll(detectionBuffers.keys)) {
                "the detector's outputs are $names, not ${detectionBuffers.keys}"
            }
        }
    }

    /** The model's view of an upright ARGB frame (see [Frame.rotatedClockwise] for camera frames). */
    fun analyze(frame: Frame): Analysis {
        val prepared = Preprocessor.prepare(frame.argb, frame.width, frame.height, facts)
        inputBuffer.rewind()
        when (input.dataType()) {
            DataType.FLOAT32 -> inputBuffer.asFloatBuffer().put(prepared)
            DataType.UINT8, DataType.INT8 -> {
                val q = input.quantizationParams()
                inputBuffer.put(Preprocessor.quantize(prepared, q.scale, q.zeroPoint, input.dataType() == DataType.INT8))
            }
            else -> throw IllegalStateException("unsupported input type ${input.dataType()}")
        }
        inputBuffer.rewind()
        val start = SystemClock.elapsedRealtimeNanos()
        if (facts.task == ModelFacts.Task.DETECTION) {
            detectionBuffers.values.forEach { it.rewind() }
            interpreter.runSignature(mapOf(signatureInput to inputBuffer), detectionBuffers, signature)
        } else {
            outputBuffer!!.rewind()
            interpreter.run(inputBuffer, outputBuffer)
        }
        val milliseconds = (SystemClock.elapsedRealtimeNanos() - start) / 1e6
        latency.add(milliseconds)
        return when (facts.task) {
            ModelFacts.Task.CLASSIFICATION -> Analysis.Classes(
                Postprocessor.topK(Postprocessor.probabilities(floatOutput(), facts), facts, 3),
                frame.width, frame.height, milliseconds)
            ModelFacts.Task.DETECTION -> {
                val floats = detectionBuffers.mapValues { (_, buffer) ->
                    buffer.rewind()
                    FloatArray(buffer.capacity() / 4).also { buffer.asFloatBuffer().get(it) }
                }
                Analysis.Boxes(
                    Detections.fromOutputs(floats.getValue("boxes"), floats.getValue("classes"),
                        floats.getValue("scores"), floats.getValue("num_detections")[0], frame.width, frame.height,
                        facts, MIN_SCORE),
                    frame.width, frame.height, milliseconds)
            }
            ModelFacts.Task.SEGMENTATION -> {
                val shape = output!!.shape()
                val mask = if (facts.outputs == "mask") {
                    outputBuffer!!.rewind()
                    val classes = IntArray(output.numElements()).also { outputBuffer.asIntBuffer().get(it) }
                    SegmentationMask.fromCategoryMask(classes, shape[2], shape[1], frame.width, frame.height)
                } else {
                    SegmentationMask.fromLogits(floatOutput(), shape[2], shape[1], shape[3], frame.width,
                        frame.height)
                }
                Analysis.Mask(mask, mask.shares(facts), mask.overlay(facts, PALETTE, MASK_ALPHA), frame.width,
                    frame.height, milliseconds)
            }
        }
    }

    /** The one output as floats: dequantized with the tensor's own scale and zero point when it is integer. */
    private fun floatOutput(): FloatArray {
        val tensor = output!!
        val buffer = outputBuffer!!
        buffer.rewind()
        return when (tensor.dataType()) {
            DataType.FLOAT32 -> FloatArray(tensor.numElements()).also { buffer.asFloatBuffer().get(it) }
            DataType.UINT8, DataType.INT8 -> {
                val raw = ByteArray(tensor.numElements()).also { buffer.get(it) }
                val q = tensor.quantizationParams()
                Postprocessor.dequantize(raw, q.scale, q.zeroPoint, tensor.dataType() == DataType.INT8)
            }
            else -> throw IllegalStateException("unsupported output type ${tensor.dataType()}")
        }
    }

    override fun close() {
        interpreter.close()
        (delegate as? Closeable)?.close()
    }

    companion object {
        /** Where `mobilevitv2 export-android` puts the model. */
        const val MODEL_ASSET = "model.tflite"

        /** Detections shown from this score, as `mobilevitv2 predict` shows them by default. */
        const val MIN_SCORE = 0.3f

        /** Class colours, as `mobilevitv2 predict` draws masks and boxes; the mask's opacity. */
        val PALETTE: IntArray = Palette.voc()
        const val MASK_ALPHA = 0.5f

        /**
         * The model on [backend] with [threads] CPU threads. A delegate that this device lacks or that
         * refuses the model falls back to the CPU, and [fallbackReason] says why.
         */
        fun create(context: Context, backend: Backend, threads: Int): VisionModel {
            val model = loadAsset(context, MODEL_ASSET)
            val facts = TfliteMetadata.readFacts(model)
            if (backend == Backend.CPU) {
                return VisionModel(Interpreter(model, cpuOptions(threads)), null, facts, backend, threads, null)
            }
            var delegate: Delegate? = null
            return try {
                delegate = createDelegate(backend)
                    ?: throw UnsupportedOperationException("not available on this device")
                val options = Interpreter.Options().setNumThreads(threads).addDelegate(delegate)
                VisionModel(Interpreter(model, options), delegate, facts, backend, threads, null)
            } catch (e: Exception) {
                (delegate as? Closeable)?.close()
                val reason = e.message?.lineSequence()?.firstOrNull() ?: e.javaClass.simpleName
                VisionModel(Interpreter(model, cpuOptions(threads)), null, facts, Backend.CPU, threads,
                    "${backend.label} refused the model ($reason): running on the CPU")
            }
        }

        private fun cpuOptions(threads: Int) = Interpreter.Options().setNumThreads(threads).setUseXNNPACK(true)

        private fun createDelegate(backend: Backend): Delegate? = when (backend) {
            Backend.GPU -> {
                val compatibility = CompatibilityList()
                if (compatibility.isDelegateSupportedOnThisDevice) {
                    GpuDelegate(compatibility.bestOptionsForThisDevice)
                } else {
                    null
                }
            }
            Backend.NNAPI -> NnApiDelegate()
            Backend.CPU -> null
        }

        private fun loadAsset(context: Context, name: String): MappedByteBuffer =
            context.assets.openFd(name).use { descriptor ->
                FileInputStream(descriptor.fileDescriptor).channel.use { channel ->
                    channel.map(FileChannel.MapMode.READ_ONLY, descriptor.startOffset, descriptor.declaredLength)
                }
            }
    }
}
