package dev.kerasmobilevitv2.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.util.Arrays;
import java.util.List;
import org.junit.Test;

/** A detector's facts and outputs to boxes, and what is refused (the golden comparison is DenseGoldenTest's). */
public class DetectionsTest {
    private static final float EXACT = 1e-3f;

    @Test
    public void detectorFactsAndRefusals() {
        String detector = "{\"task\": \"detection\", \"input_size\": [320, 320], \"crop_fraction\": 1.0, "
                + "\"input_max\": 255.0, \"class_names\": [\"cat\", \"dog\"], \"outputs\": \"detections\", "
                + "\"postprocessing\": {\"max_detections\": 3, \"score_threshold\": 0.01}}";
        ModelFacts facts = ModelFacts.fromJson(detector);
        assertEquals(ModelFacts.Task.DETECTION, facts.task);
        assertEquals(3, facts.maxDetections);
        // Three slots, two detections; the box of the second crosses the image's right edge and is clipped.
        float[] boxes = {0.1f, 0.2f, 0.5f, 0.6f, 0.0f, 0.5f, 1.0f, 1.3f, 0, 0, 0, 0};
        List<Detections.Detection> found = Detections.fromOutputs(boxes, new float[] {1, 0, 0},
                new float[] {0.9f, 0.4f, 0.0f}, 2.0f, 200, 100, facts, 0.3f);
        assertEquals(2, found.size());
        assertEquals("dog", found.get(0).name);
        assertArrayEquals(new float[] {40, 10, 120, 50}, new float[] {found.get(0).left, found.get(0).top,
                found.get(0).right, found.get(0).bottom}, EXACT);
        assertEquals(200.0f, found.get(1).right, 0.0f);
        assertEquals(1, Detections.fromOutputs(boxes, new float[] {1, 0, 0}, new float[] {0.9f, 0.4f, 0.0f}, 2.0f,
                200, 100, facts, 0.5f).size());
        for (String bad : Arrays.asList(detector.replace("\"detections\"", "\"raw\""),
                detector.replace("detection\"", "classification\""))) {
            try {
                Detections.fromOutputs(boxes, new float[3], new float[3], 1.0f, 10, 10, ModelFacts.fromJson(bad), 0f);
                fail("accepted: " + bad);
            } catch (IllegalArgumentException e) {
                assertTrue(e.getMessage(), e.getMessage().contains("--outputs detections")
                        || e.getMessage().contains("not a detector"));
            }
        }
        try {
            Detections.fromOutputs(boxes, new float[3], new float[3], 4.0f, 10, 10, facts, 0f);
            fail("more detections than outputs accepted");
        } catch (IllegalArgumentException e) {
            assertTrue(e.getMessage(), e.getMessage().contains("reports 4.0 detections but its outputs hold 3"));
        }
        try {
            ModelFacts.fromJson(detector.replace("\"detection\"", "\"depth\""));
            fail("an unknown task accepted");
        } catch (IllegalArgumentException e) {
            assertTrue(e.getMessage(), e.getMessage().contains("'depth' is not a task"));
        }
    }
}
