package dev.kerasmobilevitv2.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import org.junit.Test;

/** Camera frames turned upright, and what is found on them drawn on views of either orientation. */
public class ViewMappingTest {
    private static final float EXACT = 1e-3f;

    @Test
    public void aLandscapeFrameFillsAPortraitView() {
        // 640x480 on 1080x2400: scaled 5x to 3200x2400, its sides cut off (1060 px each side).
        ViewMapping mapping = new ViewMapping(640, 480, 1080, 2400, ViewMapping.Fit.FILL_CENTER);
        assertEquals(5.0f, mapping.scale, 0.0f);
        assertArrayEquals(new float[] {-560, 500, -60, 1000}, mapping.box(100, 100, 200, 200), EXACT);
        // The frame's centre is the view's centre.
        assertEquals(540.0f, mapping.x(320), EXACT);
        assertEquals(1200.0f, mapping.y(240), EXACT);
    }

    @Test
    public void aPortraitFrameFillsAPortraitAndALandscapeView() {
        // The same camera held upright: 480x640 frames. On 1080x2400 the height decides (2400 / 640 = 3.75 >
        // 1080 / 480 = 2.25): 1800x2400, 360 px cut off each side.
        ViewMapping portrait = new ViewMapping(480, 640, 1080, 2400, ViewMapping.Fit.FILL_CENTER);
        assertEquals(3.75f, portrait.scale, 0.0f);
        assertEquals(-360.0f, portrait.offsetX, EXACT);
        assertEquals(0.0f, portrait.offsetY, EXACT);
        // On a landscape 2400x1080 view the width decides: 5x, top and bottom cut.
        ViewMapping landscape = new ViewMapping(480, 640, 2400, 1080, ViewMapping.Fit.FILL_CENTER);
        assertEquals(5.0f, landscape.scale, 0.0f);
        assertEquals(0.0f, landscape.offsetX, EXACT);
        assertEquals((1080 - 3200) / 2.0f, landscape.offsetY, EXACT);
        assertArrayEquals(new float[] {0, -1060, 2400, 2140}, landscape.box(0, 0, 480, 640), EXACT);
    }

    @Test
    public void aPhotoFitsInsideItsView() {
        // fitCenter: the whole 640x427 photo on a 1080x1500 view, 1.6875x, centred vertically.
        ViewMapping mapping = new ViewMapping(640, 427, 1080, 1500, ViewMapping.Fit.FIT_CENTER);
        assertEquals(1.6875f, mapping.scale, 0.0f);
        float[] whole = mapping.box(0, 0, 640, 427);
        assertArrayEquals(new float[] {0, (1500 - 427 * 1.6875f) / 2, 1080, (1500 + 427 * 1.6875f) / 2}, whole,
                EXACT);
    }

    @Test
    public void boxesOnASensorFrameFollowItsTurn() {
        // A marker on a 4x3 sensor frame, turned clockwise by 90: the detection boxes of the upright frame
        // are where the marker went. Turning 4 times is the identity.
        int[] pixels = new int[12];
        pixels[1 * 4 + 3] = 0xff00ff00;  // x 3, y 1 of a 4-wide, 3-high frame
        Frame sensor = new Frame(pixels, 4, 3);
        Frame upright = sensor.rotatedClockwise(90);
        assertEquals(3, upright.width);
        assertEquals(4, upright.height);
        // Clockwise by 90: (x, y) -> (height - 1 - y, x) = (1, 3).
        assertEquals(0xff00ff00, upright.argb[3 * 3 + 1]);
        Frame back = sensor.rotatedClockwise(90).rotatedClockwise(90).rotatedClockwise(90).rotatedClockwise(90);
        assertArrayEquals(pixels, back.argb);
        assertArrayEquals(sensor.rotatedClockwise(270).argb, sensor.rotatedClockwise(-90).argb);
        try {
            sensor.rotatedClockwise(45);
            fail("45 degrees accepted");
        } catch (IllegalArgumentException e) {
            assertTrue(e.getMessage(), e.getMessage().contains("multiple of 90"));
        }
    }
}
