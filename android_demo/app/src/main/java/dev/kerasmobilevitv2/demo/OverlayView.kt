package dev.kerasmobilevitv2.demo

import android.content.Context
import android.graphics.Bitmap
import android.graphics.Canvas
import android.graphics.Color
import android.graphics.Matrix
import android.graphics.Paint
import android.graphics.RectF
import android.util.AttributeSet
import android.view.View
import dev.kerasmobilevitv2.core.ViewMapping

/**
 * Draws a detector's boxes or a segmenter's class mask over the camera preview or the photo, placed through
 * [ViewMapping] as the view under it scales the frame ([ViewMapping.Fit.FILL_CENTER] for CameraX's
 * PreviewView, [ViewMapping.Fit.FIT_CENTER] for the photo's ImageView).
 */
class OverlayView @JvmOverloads constructor(context: Context, attributes: AttributeSet? = null) :
    View(context, attributes) {
    private var analysis: Analysis? = null
    private var fit = ViewMapping.Fit.FILL_CENTER
    private var maskBitmap: Bitmap? = null
    private val palette = VisionModel.PALETTE
    private val density = resources.displayMetrics.density
    private val boxPaint = Paint().apply { style = Paint.Style.STROKE; strokeWidth = 3 * density }
    private val labelPaint = Paint().apply { style = Paint.Style.FILL }
    private val textPaint = Paint().apply { color = Color.WHITE; textSize = 14 * density; isAntiAlias = true }
    private val maskPaint = Paint().apply { isFilterBitmap = false }

    /** Shows [result] (boxes or a mask; nothing for a classifier's classes) over a view that scales by [fit]. */
    fun show(result: Analysis?, fit: ViewMapping.Fit) {
        analysis = result
        this.fit = fit
        maskBitmap = (result as? Analysis.Mask)?.let {
            Bitmap.createBitmap(it.overlay, it.mask.width, it.mask.height, Bitmap.Config.ARGB_8888)
        }
        invalidate()
    }

    override fun onDraw(canvas: Canvas) {
        super.onDraw(canvas)
        val result = analysis ?: return
        if (width == 0 || height == 0) return
        val mapping = ViewMapping(result.frameWidth, result.frameHeight, width, height, fit)
        when (result) {
            is Analysis.Mask -> maskBitmap?.let { bitmap ->
                val matrix = Matrix().apply {
                    setScale(mapping.scale, mapping.scale)
                    postTranslate(mapping.offsetX, mapping.offsetY)
                }
                canvas.drawBitmap(bitmap, matrix, maskPaint)
            }
            is Analysis.Boxes -> for (detection in result.detections) {
                val colour = Color.BLACK or palette[1 + detection.classIndex % 20]  // as predict draws it
                val box = mapping.box(detection.left, detection.top, detection.right, detection.bottom)
                boxPaint.color = colour
                canvas.drawRect(RectF(box[0], box[1], box[2], box[3]), boxPaint)
                val text = "%s %.2f".format(detection.name, detection.score)
                val textHeight = textPaint.descent() - textPaint.ascent()
                val top = maxOf(box[1] - textHeight, 0f)
                labelPaint.color = colour
                canvas.drawRect(box[0], top, box[0] + textPaint.measureText(text) + 4 * density, top + textHeight,
                    labelPaint)
                canvas.drawText(text, box[0] + 2 * density, top - textPaint.ascent(), textPaint)
            }
            is Analysis.Classes -> Unit
        }
    }

}
