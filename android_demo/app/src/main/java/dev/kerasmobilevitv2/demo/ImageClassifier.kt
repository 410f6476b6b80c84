package dev.kerasmobilevitv2.demo

import android.content.Context
import android.graphics.Bitmap
import android.os.SystemClock
import dev.kerasmobilevitv2.core.LatencyStats
import dev.kerasmobilevitv2.core.ModelFacts
import dev.kerasmobilevitv2.core.Postprocessor
import dev.kerasmobilevitv2.core.Preprocessor
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
import org.tensorflow.lite.gpu.CompatibilityList
import org.tensorflow.lite.gpu.GpuDelegate
import org.tensorflow.lite.nnapi.NnApiDelegate

enum class Backend(val label: String) { CPU("CPU (XNNPACK)"), GPU("GPU"), NNAPI("NNAPI") }

/**
 * The exported model on LiteRT's Interpreter. Input size, preprocessing and class names come from the
 * model's metadata ([TfliteMetadata]); the input and output quantization from its tensors. Every call
 * must come from one thread.
 */
class ImageClassifier private constructor(
    private val interpreter: Interpreter,
    private val delegate: Delegate?,
    val facts: ModelFacts,
    val backend: Backend,
    val threads: Int,
    /** Why the delegate that was asked for is not in use, or null. */
    val fallbackReason: String?,
) : Closeable {
    private val input = interpreter.getInputTensor(0)
    private val output = interpreter.getOutputTensor(0)
    private val inputBuffer = ByteBuffer.allocateDirect(input.numBytes()).order(ByteOrder.nativeOrder())
    private val outputBuffer = ByteBuffer.allocateDirect(output.numBytes()).order(ByteOrder.nativeOrder())

    /** Inference time of the last 100 frames (the interpreter's run only). */
    val latency = LatencyStats(100)

    init {
        val shape = input.shape()
        require(shape.contentEquals(intArrayOf(1, facts.inputHeight, facts.inputWidth, 3))) {
            "the model's input is ${shape.contentToString()} but its metadata says " +
                "${facts.inputHeight}x${facts.inputWidth}x3"
        }
    }

    class Result(val predictions: List<Postprocessor.Prediction>, val inferenceMs: Double)

    /** The top classes of an upright ARGB_8888 bitmap of any size. */
    fun classify(bitmap: Bitmap, top: Int = 3): Result {
        val pixels = IntArray(bitmap.width * bitmap.height)
        bitmap.getPixels(pixels, 0, bitmap.width, 0, 0, bitmap.width, bitmap.height)
        val prepared = Preprocessor.prepare(pixels, bitmap.width, bitmap.height, facts)
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
        outputBuffer.rewind()
        val start = SystemClock.elapsedRealtimeNanos()
        interpreter.run(inputBuffer, outputBuffer)
        val milliseconds = (SystemClock.elapsedRealtimeNanos() - start) / 1e6
        latency.add(milliseconds)
        outputBuffer.rewind()
        val scores = when (output.dataType()) {
            DataType.FLOAT32 -> FloatArray(output.numElements()).also { outputBuffer.asFloatBuffer().get(it) }
            DataType.UINT8, DataType.INT8 -> {
                val raw = ByteArray(output.numElements()).also { outputBuffer.get(it) }
                val q = output.quantizationParams()
                Postprocessor.dequantize(raw, q.scale, q.zeroPoint, output.dataType() == DataType.INT8)
            }
            else -> throw IllegalStateException("unsupported output type ${output.dataType()}")
        }
        return Result(Postprocessor.topK(Postprocessor.probabilities(scores, facts), facts, top), milliseconds)
    }

    override fun close() {
        interpreter.close()
        (delegate as? Closeable)?.close()
    }

    companion object {
        /** Where `mobilevitv2 export-android` puts the model. */
        const val MODEL_ASSET = "model.tflite"

        /**
         * The classifier on [backend] with [threads] CPU threads. A delegate that this device lacks or that
         * refuses the model falls back to the CPU, and [fallbackReason] says why.
         */
        fun create(context: Context, backend: Backend, threads: Int): ImageClassifier {
            val model = loadAsset(context, MODEL_ASSET)
            val facts = TfliteMetadata.readFacts(model)
            if (backend == Backend.CPU) {
                return ImageClassifier(Interpreter(model, cpuOptions(threads)), null, facts, backend, threads, null)
            }
            var delegate: Delegate? = null
            return try {
                delegate = createDelegate(backend)
                    ?: throw UnsupportedOperationException("not available on this device")
                val options = Interpreter.Options().setNumThreads(threads).addDelegate(delegate)
                ImageClassifier(Interpreter(model, options), delegate, facts, backend, threads, null)
            } catch (e: Exception) {
                (delegate as? Closeable)?.close()
                val reason = e.message?.lineSequence()?.firstOrNull() ?: e.javaClass.simpleName
                ImageClassifier(Interpreter(model, cpuOptions(threads)), null, facts, Backend.CPU, threads,
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
