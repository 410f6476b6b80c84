package dev.kerasmobilevitv2.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;

import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.Test;

/**
 * The segmentation and detection paths against the Python pipeline: the official DeepLabv3 and SSDLite
 * converted by {@code mobilevitv2 convert}, their outputs on real photos (a landscape and a portrait one),
 * and what {@code mobilevitv2 predict} made of them (make_golden.py, dense.json).
 */
public class DenseGoldenTest {
    @SuppressWarnings("unchecked")
    private static Map<String, Object> dense() throws IOException {
        return (Map<String, Object>) Golden.json("dense.json");
    }

    @SuppressWarnings("unchecked")
    private static List<Map<String, Object>> cases(String task) throws IOException {
        return (List<Map<String, Object>>) dense().get(task);
    }

    private static ModelFacts facts(Map<String, Object> entry) throws IOException {
        return TfliteMetadata.readFacts(ByteBuffer.wrap(Golden.bytes((String) entry.get("model"))));
    }

    /** The module's input tensor for the case's photo equals the one the Python reader ran the file on. */
    private static void assertInputEqualsPythons(Map<String, Object> entry, ModelFacts facts) throws IOException {
        Frame photo = Golden.frame((String) entry.get("image"));
        float[] actual = Preprocessor.prepare(photo.argb, photo.width, photo.height, facts);
        float[] expected = Golden.floats((String) entry.get("input"));
        assertEquals(expected.length, actual.length);
        int differing = 0;
        for (int i = 0; i < expected.length; i++) {
            float difference = Math.abs(expected[i] - actual[i]);
            assertTrue(entry.get("input") + "[" + i + "]: " + expected[i] + " against " + actual[i],
                    difference <= facts.inputMax / 255.0f + 1e-6f);
            differing += difference > 0 ? 1 : 0;
        }
        assertTrue(entry.get("input") + ": " + differing + " values differ", differing <= expected.length / 100);
    }

    @Test
    public void detectionBoxesEqualPredicts() throws IOException {
        int boxes = 0;
        for (Map<String, Object> entry : cases("detection")) {
            ModelFacts facts = facts(entry);
            assertEquals(ModelFacts.Task.DETECTION, facts.task);
            assertEquals("detections", facts.outputs);
            assertEquals(200, facts.maxDetections);
            assertInputEqualsPythons(entry, facts);
            BufferedImage photo = Golden.image((String) entry.get("image"));
            List<Detections.Detection> found = Detections.fromOutputs(
                    Golden.floats((String) entry.get("boxes")), Golden.floats((String) entry.get("classes")),
                    Golden.floats((String) entry.get("scores")), Golden.number(entry.get("num_detections")),
                    photo.getWidth(), photo.getHeight(), facts, Golden.number(entry.get("min_score")));
            Map<String, Object> predicted = Golden.json((String) entry.get("predicted"));
            List<?> expected = (List<?>) predicted.get("detections");
            assertEquals(entry.get("image") + ": detections", expected.size(), found.size());
            assertTrue(entry.get("image") + ": too few detections to say much", expected.size() >= 2);
            float worst = 0.0f;
            for (int i = 0; i < found.size(); i++) {
                Map<?, ?> want = (Map<?, ?>) expected.get(i);
                Detections.Detection got = found.get(i);
                assertEquals(want.get("label"), got.name);
                assertEquals(((Number) want.get("class_id")).intValue(), got.classIndex + 1);
                assertEquals(Golden.number(want.get("score")), got.score, 1e-6f);
                List<?> box = (List<?>) want.get("box");
                float[] ours = {got.left, got.top, got.right, got.bottom};
                for (int k = 0; k < 4; k++) {
                    worst = Math.max(worst, Math.abs(Golden.number(box.get(k)) - ours[k]));
                }
            }
            System.out.printf("%s: %d detections as predict's, boxes within %.5f px%n", entry.get("image"),
                    found.size(), worst);
            assertTrue(entry.get("image") + ": a box is " + worst + " px from predict's", worst <= 1.0f);
            boxes += found.size();
        }
        assertTrue(boxes > 0);
    }

    @Test
    public void segmentationMasksEqualPredicts() throws IOException {
        int[] palette = Palette.voc();
        for (Map<String, Object> entry : cases("segmentation")) {
            ModelFacts facts = facts(entry);
            assertEquals(ModelFacts.Task.SEGMENTATION, facts.task);
            assertInputEqualsPythons(entry, facts);
            List<?> shape = (List<?>) entry.get("shape");
            int height = ((Number) shape.get(0)).intValue();
            int width = ((Number) shape.get(1)).intValue();
            int classCount = ((Number) shape.get(2)).intValue();
            assertEquals(classCount, facts.classNames.size());
            assertEquals("background", facts.className(0));
            String name = (String) entry.get("logits");
            float[] logits = name.endsWith(".q8")
                    ? Postprocessor.dequantize(Golden.bytes(name), Golden.number(entry.get("scale")),
                            ((Number) entry.get("zero_point")).intValue(), true)
                    : Golden.floats(name);
            BufferedImage expected = Golden.image((String) entry.get("mask"));
            SegmentationMask mask = SegmentationMask.fromLogits(logits, width, height, classCount,
                    expected.getWidth(), expected.getHeight());
            int differing = 0;
            for (int y = 0; y < mask.height; y++) {
                for (int x = 0; x < mask.width; x++) {
                    differing += expected.getRaster().getSample(x, y, 0) == mask.classes[y * mask.width + x] ? 0 : 1;
                }
            }
            System.out.printf("%s %s (%dx%dx%d logits): %d of %d mask pixels differ from predict's%n",
                    entry.get("model"), entry.get("image"), height, width, classCount, differing,
                    mask.classes.length);
            assertTrue(entry.get("model") + " " + entry.get("image") + ": " + differing + " pixels differ",
                    differing <= mask.classes.length / 1000);
            // The legend: predict's class shares.
            Map<?, ?> shares = (Map<?, ?>) entry.get("shares");
            Map<String, Double> ours = new HashMap<>();
            for (SegmentationMask.ClassShare share : mask.shares(facts)) {
                ours.put(share.name, share.share);
            }
            assertTrue(entry.get("image") + ": a photo of one class says little", ours.size() >= 2);
            assertEquals(shares.keySet(), ours.keySet());
            for (Map.Entry<?, ?> share : shares.entrySet()) {
                assertEquals((String) share.getKey(), ((Number) share.getValue()).doubleValue(),
                        ours.get((String) share.getKey()), 1e-3);
            }
            int[] overlay = mask.overlay(facts, palette, 0.5f);
            for (int i = 0; i < overlay.length; i += 997) {
                int c = mask.classes[i];
                int want = c == 0 ? 0 : (128 << 24) | palette[c];  // class 0, "background", is left clear
                assertEquals(want, overlay[i]);
            }
        }
    }

    @Test
    @SuppressWarnings("unchecked")
    public void categoryMasksAreResizedAsPythonDoes() throws IOException {
        Map<String, Object> entry = (Map<String, Object>) dense().get("category_mask");
        int outHeight = ((Number) entry.get("out_height")).intValue();
        int outWidth = ((Number) entry.get("out_width")).intValue();
        SegmentationMask mask = SegmentationMask.fromCategoryMask(Golden.ints((String) entry.get("mask")),
                ((Number) entry.get("width")).intValue(), ((Number) entry.get("height")).intValue(), outWidth,
                outHeight);
        assertArrayEquals(Golden.ints((String) entry.get("resized")), mask.classes);
    }

    @Test
    public void paletteIsPythons() throws IOException {
        List<?> expected = (List<?>) dense().get("palette");
        int[] palette = Palette.voc();
        for (int i = 0; i < palette.length; i++) {
            int rgb = (((Number) expected.get(3 * i)).intValue() << 16) | (((Number) expected.get(3 * i + 1)).intValue() << 8)
                    | ((Number) expected.get(3 * i + 2)).intValue();
            assertEquals("colour " + i, rgb, palette[i]);
        }
    }

    @Test
    @SuppressWarnings("unchecked")
    public void sensorFramesTurnUpright() throws IOException {
        List<Map<String, Object>> rotations = (List<Map<String, Object>>) dense().get("rotations");
        assertEquals(3, rotations.size());
        for (Map<String, Object> entry : rotations) {
            Frame upright = Golden.frame((String) entry.get("upright"));
            Frame turned = Golden.frame((String) entry.get("sensor"))
                    .rotatedClockwise(((Number) entry.get("degrees")).intValue());
            assertEquals(upright.width, turned.width);
            assertEquals(upright.height, turned.height);
            assertArrayEquals("turned " + entry.get("degrees"), upright.argb, turned.argb);
        }
    }
}
