package dev.kerasmobilevitv2.core;

/**
 * Where a point of an upright frame lands on a view that shows it scaled and centred: CameraX's
 * {@code PreviewView} fills the view and crops the overflow ({@link Fit#FILL_CENTER}, its default),
 * an {@code ImageView} with {@code fitCenter} shows the whole image ({@link Fit#FIT_CENTER}). Boxes and
 * masks found on the frame are drawn through this mapping so that they sit on what the user sees.
 */
public final class ViewMapping {
    /** How the view scales the frame. */
    public enum Fit { FILL_CENTER, FIT_CENTER }

    /** View pixels per frame pixel. */
    public final float scale;
    /** Where the frame's top-left corner lands on the view (negative where the frame overflows it). */
    public final float offsetX;
    public final float offsetY;

    public ViewMapping(int frameWidth, int frameHeight, int viewWidth, int viewHeight, Fit fit) {
        if (frameWidth < 1 || frameHeight < 1 || viewWidth < 1 || viewHeight < 1) {
            throw new IllegalArgumentException("frame " + frameWidth + "x" + frameHeight + " and view " + viewWidth
                    + "x" + viewHeight + " must have positive sizes");
        }
        float horizontal = (float) viewWidth / frameWidth;
        float vertical = (float) viewHeight / frameHeight;
        scale = fit == Fit.FILL_CENTER ? Math.max(horizontal, vertical) : Math.min(horizontal, vertical);
        offsetX = (viewWidth - frameWidth * scale) / 2.0f;
        offsetY = (viewHeight - frameHeight * scale) / 2.0f;
    }

    public float x(float frameX) {
        return offsetX + frameX * scale;
    }

    public float y(float frameY) {
        return offsetY + frameY * scale;
    }

    /** A box {@code [left, top, right, bottom]} of the frame on the view. */
    public float[] box(float left, float top, float right, float bottom) {
        return new float[] {x(left), y(top), x(right), y(bottom)};
    }
}
