package dev.kerasmobilevitv2.demo

import android.Manifest
import android.content.pm.PackageManager
import android.graphics.Bitmap
import android.graphics.ImageDecoder
import android.net.Uri
import android.os.Build
import android.os.Bundle
import android.provider.MediaStore
import android.text.SpannableStringBuilder
import android.text.Spanned
import android.text.style.ForegroundColorSpan
import android.view.View
import android.widget.AdapterView
import android.widget.Button
import android.widget.ImageView
import android.widget.Spinner
import android.widget.TextView
import androidx.activity.result.PickVisualMediaRequest
import androidx.activity.result.contract.ActivityResultContracts
import androidx.appcompat.app.AppCompatActivity
import androidx.camera.core.CameraSelector
import androidx.camera.core.ImageAnalysis
import androidx.camera.core.ImageProxy
import androidx.camera.core.Preview
import androidx.camera.core.resolutionselector.AspectRatioStrategy
import androidx.camera.core.resolutionselector.ResolutionSelector
import androidx.camera.lifecycle.ProcessCameraProvider
import androidx.camera.view.PreviewView
import androidx.core.content.ContextCompat
import dev.kerasmobilevitv2.core.Frame
import dev.kerasmobilevitv2.core.ModelFacts
import dev.kerasmobilevitv2.core.ViewMapping
import java.io.FileNotFoundException
import java.util.concurrent.ExecutorService
import java.util.concurrent.Executors

/**
 * Runs the exported model on camera frames (or a picked photo), in the mode its file says: a classifier's
 * top-3 classes, a detector's boxes with labels and scores, or a segmenter's class mask with a legend of the
 * classes present; the inference latency (average and p90 of the last 100 frames), and a choice of delegate
 * and CPU threads.
 */
class MainActivity : AppCompatActivity() {
    private lateinit var preview: PreviewView
    private lateinit var photo: ImageView
    private lateinit var overlay: OverlayView
    private lateinit var predictions: TextView
    private lateinit var latency: TextView
    private lateinit var status: TextView
    private lateinit var delegateChoice: Spinner
    private lateinit var threadChoice: Spinner
    private lateinit var sourceButton: Button

    /** The model is made, used and closed on this one thread. */
    private val worker: ExecutorService = Executors.newSingleThreadExecutor()
    private var model: VisionModel? = null

    @Volatile
    private var showingPhoto = false

    private val requestCamera =
        registerForActivityResult(ActivityResultContracts.RequestPermission()) { granted ->
            if (granted) startCamera() else status.setText(R.string.camera_denied)
        }

    private val pickPhoto =
        registerForActivityResult(ActivityResultContracts.PickVisualMedia()) { uri -> uri?.let(::analyzePhoto) }

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContentView(R.layout.activity_main)
        preview = findViewById(R.id.preview)
        photo = findViewById(R.id.photo)
        overlay = findViewById(R.id.overlay)
        // The overlay maps frames onto the preview as the preview shows them: filled and centred.
        preview.scaleType = PreviewView.ScaleType.FILL_CENTER
        predictions = findViewById(R.id.predictions)
        latency = findViewById(R.id.latency)
        status = findViewById(R.id.status)
        delegateChoice = findViewById(R.id.delegate)
        threadChoice = findViewById(R.id.threads)
        sourceButton = findViewById(R.id.source)

        val reload = object : AdapterView.OnItemSelectedListener {
            override fun onItemSelected(parent: AdapterView<*>?, view: View?, position: Int, id: Long) = reloadModel()
            override fun onNothingSelected(parent: AdapterView<*>?) = Unit
        }
        delegateChoice.onItemSelectedListener = reload
        threadChoice.onItemSelectedListener = reload
        sourceButton.setOnClickListener {
            if (showingPhoto) {
                showCamera()
            } else {
                pickPhoto.launch(PickVisualMediaRequest(ActivityResultContracts.PickVisualMedia.ImageOnly))
            }
        }

        if (ContextCompat.checkSelfPermission(this, Manifest.permission.CAMERA) == PackageManager.PERMISSION_GRANTED) {
            startCamera()
        } else {
            requestCamera.launch(Manifest.permission.CAMERA)
        }
    }

    /** Makes the model for the chosen delegate and thread count (on the worker thread). */
    private fun reloadModel() {
        val backend = Backend.values()[delegateChoice.selectedItemPosition]
        val threads = threadChoice.selectedItem.toString().toInt()
        worker.execute {
            model?.close()
            model = null
            val message = try {
                val created = VisionModel.create(this, backend, threads)
                model = created
                val facts = created.facts
                (created.fallbackReason?.let { "$it\n" } ?: "") +
                    "${facts.task.name.lowercase()}: ${facts.architecture ?: "model"} ${facts.precision ?: ""}, " +
                    "${facts.inputHeight}x${facts.inputWidth}, ${facts.classNames.size} classes, " +
                    "${created.backend.label}, $threads thread(s)"
            } catch (e: FileNotFoundException) {
                getString(R.string.no_model)
            } catch (e: IllegalArgumentException) {
                "Cannot use the model: ${e.message}"
            }
            runOnUiThread { status.text = message }
        }
    }

    private fun startCamera() {
        val future = ProcessCameraProvider.getInstance(this)
        future.addListener({
            val provider = future.get()
            // Preview and analysis at one aspect ratio, so that the frames analysed show what the preview shows.
            val sameAspect = ResolutionSelector.Builder()
                .setAspectRatioStrategy(AspectRatioStrategy.RATIO_4_3_FALLBACK_AUTO_STRATEGY)
                .build()
            val previewUseCase = Preview.Builder().setResolutionSelector(sameAspect).build()
                .also { it.setSurfaceProvider(preview.surfaceProvider) }
            val analysis = ImageAnalysis.Builder()
                .setResolutionSelector(sameAspect)
                .setBackpressureStrategy(ImageAnalysis.STRATEGY_KEEP_ONLY_LATEST)
                .setOutputImageFormat(ImageAnalysis.OUTPUT_IMAGE_FORMAT_RGBA_8888)
                .build()
            analysis.setAnalyzer(worker, ::analyze)
            provider.unbindAll()
            provider.bindToLifecycle(this, CameraSelector.DEFAULT_BACK_CAMERA, previewUseCase, analysis)
        }, ContextCompat.getMainExecutor(this))
    }

    /** One camera frame, on the worker thread: turned upright as the sensor's rotation says, then analysed. */
    private fun analyze(image: ImageProxy) {
        image.use {
            val current = model ?: return
            if (showingPhoto) return
            val frame = pixels(it.toBitmap()).rotatedClockwise(it.imageInfo.rotationDegrees)
            show(current, current.analyze(frame), ViewMapping.Fit.FILL_CENTER)
        }
    }

    private fun analyzePhoto(uri: Uri) {
        showingPhoto = true
        sourceButton.setText(R.string.back_to_camera)
        worker.execute {
            val current = model ?: return@execute
            val bitmap = try {
                decode(uri)
            } catch (e: Exception) {
                runOnUiThread { status.text = "Cannot read the photo: ${e.message}" }
                return@execute
            }
            val result = current.analyze(pixels(bitmap))
            runOnUiThread {
                preview.visibility = View.INVISIBLE
                photo.visibility = View.VISIBLE
                photo.setImageBitmap(bitmap)
            }
            // The photo's ImageView is fitCenter: the whole photo, centred.
            show(current, result, ViewMapping.Fit.FIT_CENTER)
        }
    }

    private fun pixels(bitmap: Bitmap): Frame {
        val argb = IntArray(bitmap.width * bitmap.height)
        bitmap.getPixels(argb, 0, bitmap.width, 0, 0, bitmap.width, bitmap.height)
        return Frame(argb, bitmap.width, bitmap.height)
    }

    private fun showCamera() {
        showingPhoto = false
        overlay.show(null, ViewMapping.Fit.FILL_CENTER)
        photo.visibility = View.GONE
        preview.visibility = View.VISIBLE
        sourceButton.setText(R.string.pick_photo)
    }

    private fun show(current: VisionModel, result: Analysis, fit: ViewMapping.Fit) {
        val stats = current.latency
        val text: CharSequence = when (result) {
            is Analysis.Classes -> result.top.joinToString("\n") { "%s  %.1f%%".format(it.name, 100f * it.score) }
            is Analysis.Boxes -> describe(result, current.facts)
            is Analysis.Mask -> legend(result)
        }
        val timing = "%.1f ms   avg %.1f   p90 %.1f   (last %d)   %s, %d thread(s)".format(
            result.inferenceMs, stats.average(), stats.percentile(90.0), stats.size(), current.backend.label,
            current.threads)
        runOnUiThread {
            predictions.text = text
            latency.text = timing
            overlay.show(result, fit)
        }
    }

    private fun describe(result: Analysis.Boxes, facts: ModelFacts): String {
        if (result.detections.isEmpty()) {
            return "nothing of ${facts.classNames.size} classes scores ${VisionModel.MIN_SCORE} or more"
        }
        val counts = result.detections.groupingBy { it.name }.eachCount()
        return "${result.detections.size} found: " + counts.entries.joinToString(", ") { "${it.value} ${it.key}" }
    }

    /** The classes present with their share of the frame, each in its mask colour. */
    private fun legend(result: Analysis.Mask): CharSequence {
        val text = SpannableStringBuilder()
        for (share in result.shares.take(6)) {
            val start = text.length
            text.append("\u25A0 ")
            text.setSpan(ForegroundColorSpan(0xff000000.toInt() or VisionModel.PALETTE[share.classIndex]), start,
                start + 1, Spanned.SPAN_EXCLUSIVE_EXCLUSIVE)
            text.append("%s %.0f%%   ".format(share.name, 100 * share.share))
        }
        return text
    }

    @Suppress("DEPRECATION")
    private fun decode(uri: Uri): Bitmap {
        val decoded = if (Build.VERSION.SDK_INT >= Build.VERSION_CODES.P) {
            ImageDecoder.decodeBitmap(ImageDecoder.createSource(contentResolver, uri)) { decoder, _, _ ->
                decoder.allocator = ImageDecoder.ALLOCATOR_SOFTWARE
            }
        } else {
            MediaStore.Images.Media.getBitmap(contentResolver, uri)
        }
        return decoded.copy(Bitmap.Config.ARGB_8888, false)
    }

    override fun onDestroy() {
        super.onDestroy()
        worker.execute { model?.close() }
        worker.shutdown()
    }
}
