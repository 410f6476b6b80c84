package dev.kerasmobilevitv2.demo

import android.Manifest
import android.content.pm.PackageManager
import android.graphics.Bitmap
import android.graphics.ImageDecoder
import android.graphics.Matrix
import android.net.Uri
import android.os.Build
import android.os.Bundle
import android.provider.MediaStore
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
import androidx.camera.lifecycle.ProcessCameraProvider
import androidx.camera.view.PreviewView
import androidx.core.content.ContextCompat
import java.io.FileNotFoundException
import java.util.concurrent.ExecutorService
import java.util.concurrent.Executors

/**
 * Classifies camera frames (or a picked photo) with the exported model: top-3 classes, inference
 * latency (average and p90 of the last 100 frames), and a choice of delegate and CPU threads.
 */
class MainActivity : AppCompatActivity() {
    private lateinit var preview: PreviewView
    private lateinit var photo: ImageView
    private lateinit var predictions: TextView
    private lateinit var latency: TextView
    private lateinit var status: TextView
    private lateinit var delegateChoice: Spinner
    private lateinit var threadChoice: Spinner
    private lateinit var sourceButton: Button

    /** The classifier is made, used and closed on this one thread. */
    private val worker: ExecutorService = Executors.newSingleThreadExecutor()
    private var classifier: ImageClassifier? = null

    @Volatile
    private var showingPhoto = false

    private val requestCamera =
        registerForActivityResult(ActivityResultContracts.RequestPermission()) { granted ->
            if (granted) startCamera() else status.setText(R.string.camera_denied)
        }

    private val pickPhoto =
        registerForActivityResult(ActivityResultContracts.PickVisualMedia()) { uri -> uri?.let(::classifyPhoto) }

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContentView(R.layout.activity_main)
        preview = findViewById(R.id.preview)
        photo = findViewById(R.id.photo)
        predictions = findViewById(R.id.predictions)
        latency = findViewById(R.id.latency)
        status = findViewById(R.id.status)
        delegateChoice = findViewById(R.id.delegate)
        threadChoice = findViewById(R.id.threads)
        sourceButton = findViewById(R.id.source)

        val reload = object : AdapterView.OnItemSelectedListener {
            override fun onItemSelected(parent: AdapterView<*>?, view: View?, position: Int, id: Long) = reloadClassifier()
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

    /** Makes a classifier for the chosen delegate and thread count (on the worker thread). */
    private fun reloadClassifier() {
        val backend = Backend.values()[delegateChoice.selectedItemPosition]
        val threads = threadChoice.selectedItem.toString().toInt()
        worker.execute {
            classifier?.close()
            classifier = null
            val message = try {
                val created = ImageClassifier.create(this, backend, threads)
                classifier = created
                val facts = created.facts
                (created.fallbackReason?.let { "$it\n" } ?: "") +
                    "${facts.architecture ?: "model"} ${facts.precision ?: ""}, ${facts.inputHeight}x${facts.inputWidth}, " +
                    "${facts.classNames.size} classes, ${created.backend.label}, $threads thread(s)"
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
            val previewUseCase = Preview.Builder().build().also { it.setSurfaceProvider(preview.surfaceProvider) }
            val analysis = ImageAnalysis.Builder()
                .setBackpressureStrategy(ImageAnalysis.STRATEGY_KEEP_ONLY_LATEST)
                .setOutputImageFormat(ImageAnalysis.OUTPUT_IMAGE_FORMAT_RGBA_8888)
                .build()
            analysis.setAnalyzer(worker, ::analyze)
            provider.unbindAll()
            provider.bindToLifecycle(this, CameraSelector.DEFAULT_BACK_CAMERA, previewUseCase, analysis)
        }, ContextCompat.getMainExecutor(this))
    }

    /** One camera frame, on the worker thread. */
    private fun analyze(image: ImageProxy) {
        image.use {
            val current = classifier ?: return
            if (showingPhoto) return
            val frame = rotated(it.toBitmap(), it.imageInfo.rotationDegrees)
            show(current, current.classify(frame))
        }
    }

    private fun classifyPhoto(uri: Uri) {
        showingPhoto = true
        sourceButton.setText(R.string.back_to_camera)
        worker.execute {
            val current = classifier ?: return@execute
            val bitmap = try {
                decode(uri)
            } catch (e: Exception) {
                runOnUiThread { status.text = "Cannot read the photo: ${e.message}" }
                return@execute
            }
            val result = current.classify(bitmap)
            runOnUiThread {
                preview.visibility = View.INVISIBLE
                photo.visibility = View.VISIBLE
                photo.setImageBitmap(bitmap)
            }
            show(current, result)
        }
    }

    private fun showCamera() {
        showingPhoto = false
        photo.visibility = View.GONE
        preview.visibility = View.VISIBLE
        sourceButton.setText(R.string.pick_photo)
    }

    private fun show(current: ImageClassifier, result: ImageClassifier.Result) {
        val stats = current.latency
        val top = result.predictions.joinToString("\n") { "%s  %.1f%%".format(it.name, 100f * it.score) }
        val timing = "%.1f ms   avg %.1f   p90 %.1f   (last %d)   %s, %d thread(s)".format(
            result.inferenceMs, stats.average(), stats.percentile(90.0), stats.size(), current.backend.label,
            current.threads)
        runOnUiThread {
            predictions.text = top
            latency.text = timing
        }
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

    private fun rotated(bitmap: Bitmap, degrees: Int): Bitmap {
        if (degrees == 0) return bitmap
        val matrix = Matrix().apply { postRotate(degrees.toFloat()) }
        return Bitmap.createBitmap(bitmap, 0, 0, bitmap.width, bitmap.height, matrix, true)
    }

    override fun onDestroy() {
        super.onDestroy()
        worker.execute { classifier?.close() }
        worker.shutdown()
    }
}
