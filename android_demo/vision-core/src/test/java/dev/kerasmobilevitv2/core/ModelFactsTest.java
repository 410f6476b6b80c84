package dev.kerasmobilevitv2.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.util.List;
import java.util.Map;
import org.junit.Test;

public class ModelFactsTest {
    private static final String FACTS = "{\"input_size\": [256, 192], \"crop_fraction\": 0.888, "
            + "\"interpolation\": \"bicubic\", \"input_max\": 255.0, \"class_names\": [\"a\", \"b\\u00e9\"], "
            + "\"architecture\": \"mobilevitv2_100\", \"precision\": \"int8\", \"io_type\": \"uint8\"}";

    private static void assertRefused(String json, String fragment) {
        try {
            ModelFacts.fromJson(json);
            fail("accepted: " + json);
        } catch (IllegalArgumentException e) {
            assertTrue(e.getMessage() + " should mention " + fragment, e.getMessage().contains(fragment));
        }
    }

    @Test
    public void factsAreRead() {
        ModelFacts facts = ModelFacts.fromJson(FACTS);
        assertEquals(256, facts.inputHeight);
        assertEquals(192, facts.inputWidth);
        assertEquals(0.888f, facts.cropFraction, 0.0f);
        assertEquals("b\u00e9", facts.className(1));
        assertEquals("7", facts.className(7));  // no name: its number
        assertEquals("int8", facts.precision);
    }

    @Test
    public void missingOrWrongKeysAreNamed() {
        assertRefused(FACTS.replace("\"input_size\": [256, 192], ", ""), "'input_size'");
        assertRefused(FACTS.replace("[256, 192]", "[256]"), "'input_size'");
        assertRefused(FACTS.replace("0.888", "\"wide\""), "'crop_fraction'");
        assertRefused(FACTS.replace("0.888", "1.5"), "crop_fraction");
        assertRefused(FACTS.replace("bicubic", "lanczos5"), "lanczos5");
        assertRefused("[1, 2]", "expected an object");
        assertRefused("{\"input_size\": [1, 2", "metadata JSON");
    }

    @Test
    public void jsonReadsWhatPythonWrites() {
        Object parsed = Json.parse("{\"a\": [1, -2.5e3, true, false, null], \"b\": {\"c\": \"x\\\"y\\n\\u00fc\"}}");
        Map<?, ?> map = (Map<?, ?>) parsed;
        List<?> list = (List<?>) map.get("a");
        assertEquals(-2500.0, (Double) list.get(1), 0.0);
        assertEquals(Boolean.TRUE, list.get(2));
        assertEquals(null, list.get(4));
        assertEquals("x\"y\n\u00fc", ((Map<?, ?>) map.get("b")).get("c"));
    }

    @Test
    public void preprocessingChecksItsInput() {
        ModelFacts facts = ModelFacts.fromJson(FACTS);
        try {
            Preprocessor.prepare(new int[10], 4, 4, facts);
            fail("a wrong pixel count was accepted");
        } catch (IllegalArgumentException e) {
            assertTrue(e.getMessage(), e.getMessage().contains("4x4 = 16 pixels, got 10"));
        }
        // A 640x427 photo covers 288 on its short side at 256 / 0.888: 432x288, then the centre crop.
        int[] size = Preprocessor.resizedSize(427, 640, ModelFacts.fromJson(FACTS.replace("[256, 192]", "[256, 256]")));
        assertEquals(288, size[0]);
        assertEquals(432, size[1]);
    }

    @Test
    public void latencyWindowKeepsTheLastValues() {
        LatencyStats stats = new LatencyStats(3);
        assertTrue(Double.isNaN(stats.average()));
        for (double value : new double[] {100, 1, 2, 3}) {
            stats.add(value);
        }
        assertEquals(2.0, stats.average(), 1e-12);
        assertEquals(2.8, stats.percentile(90), 1e-12);
        assertEquals(1.0, stats.percentile(0), 1e-12);
    }
}
