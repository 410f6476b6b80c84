package dev.kerasmobilevitv2.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.junit.Test;

/**
 * The classification path against the Python pipeline: golden data made by make_golden.py with the package's
 * own evaluation transform, converter, softmax and NumPy statistics.
 */
public class GoldenTest {
    private static List<Map<String, Object>> cases() throws IOException {
        return Golden.json("cases.json");
    }

    private static ModelFacts facts(Map<String, Object> caseEntry) {
        return ModelFacts.fromJson(toJson(caseEntry.get("facts")));
    }

    /** Writes parsed JSON back (numbers, strings, lists, maps): the facts go through fromJson as in the app. */
    private static String toJson(Object value) {
        if (value == null) {
            return "null";
        }
        if (value instanceof String) {
            return "\"" + ((String) value).replace("\\", "\\\\").replace("\"", "\\\"") + "\"";
        }
        if (value instanceof List) {
            StringBuilder out = new StringBuilder("[");
            for (Object item : (List<?>) value) {
                out.append(out.length() > 1 ? "," : "").append(toJson(item));
            }
            return out.append("]").toString();
        }
        if (value instanceof Map) {
            StringBuilder out = new StringBuilder("{");
            for (Map.Entry<?, ?> entry : ((Map<?, ?>) value).entrySet()) {
                out.append(out.length() > 1 ? "," : "").append(toJson(entry.getKey())).append(":")
                        .append(toJson(entry.getValue()));
            }
            return out.append("}").toString();
        }
        return String.valueOf(value);
    }

    private static float[] javaInput(Map<String, Object> caseEntry, ModelFacts facts) throws IOException {
        Frame frame = Golden.frame((String) caseEntry.get("image"));
        return Preprocessor.prepare(frame.argb, frame.width, frame.height, facts);
    }

    @Test
    public void inputTensorsEqualThePythonPipelines() throws IOException {
        List<Map<String, Object>> all = cases();
        assertTrue("golden cases missing", all.size() >= 4);
        for (Map<String, Object> caseEntry : all) {
            ModelFacts facts = facts(caseEntry);
            float[] expected = Golden.floats((String) caseEntry.get("input"));
            float[] actual = javaInput(caseEntry, facts);
            assertEquals(caseEntry.get("input") + ": size", expected.length, actual.length);
            float worst = 0.0f;
            int differing = 0;
            for (int i = 0; i < expected.length; i++) {
                float difference = Math.abs(expected[i] - actual[i]);
                worst = Math.max(worst, difference);
                differing += difference > 0 ? 1 : 0;
            }
            float allowed = facts.inputMax / 255.0f + 1e-6f;  // one grey level after scaling
            System.out.printf("%s %s %dx%d %s: max difference %.6f (%d of %d values differ)%n",
                    caseEntry.get("input"), caseEntry.get("image"), facts.inputHeight, facts.inputWidth,
                    facts.interpolation, worst, differing, expected.length);
            assertTrue(caseEntry.get("input") + ": max difference " + worst + " > " + allowed, worst <= allowed);
            assertTrue(caseEntry.get("input") + ": too many values differ", differing <= expected.length / 100);
        }
    }

    @Test
    public void quantizedInputsEqualThePythonPipelines() throws IOException {
        int checked = 0;
        for (Map<String, Object> caseEntry : cases()) {
            if (!caseEntry.containsKey("quantization")) {
                continue;
            }
            Map<String, Object> q = (Map<String, Object>) caseEntry.get("quantization");
            boolean signed = (Boolean) q.get("signed");
            byte[] actual = Preprocessor.quantize(javaInput(caseEntry, facts(caseEntry)),
                    ((Number) q.get("scale")).floatValue(), ((Number) q.get("zero_point")).intValue(), signed);
            byte[] expected = Golden.bytes((String) caseEntry.get("quantized"));
            assertEquals(expected.length, actual.length);
            for (int i = 0; i < expected.length; i++) {
                int e = signed ? expected[i] : expected[i] & 0xff;
                int a = signed ? actual[i] : actual[i] & 0xff;
                if (Math.abs(e - a) > 2) {  // one grey level is at most 2 quanta at scale 0.75
                    fail(caseEntry.get("quantized") + "[" + i + "]: python " + e + ", java " + a);
                }
            }
            checked++;
        }
        assertEquals(2, checked);
    }

    @Test
    public void factsAreReadFromAConvertedModel() throws IOException {
        ModelFacts facts = TfliteMetadata.readFacts(ByteBuffer.wrap(Golden.bytes("model.tflite")));
        Map<String, Object> expected = Golden.json("facts.json");
        List<?> size = (List<?>) expected.get("input_size");
        assertEquals(((Number) size.get(0)).intValue(), facts.inputHeight);
        assertEquals(((Number) size.get(1)).intValue(), facts.inputWidth);
        assertEquals(32, facts.inputHeight);
        assertEquals(48, facts.inputWidth);
        assertEquals(((Number) expected.get("crop_fraction")).floatValue(), facts.cropFraction, 0.0f);
        assertEquals(expected.get("interpolation"), facts.interpolation);
        assertEquals(255.0f, facts.inputMax, 0.0f);
        assertEquals(Arrays.asList("cat", "dog", "caf\u00e9 \"au lait\""), facts.classNames);
        assertEquals("mobilevitv2_050", facts.architecture);
        assertEquals("fp16", facts.precision);
        assertEquals("dog", facts.className(1));
        // convert appends the softmax to a model that outputs logits, and says so: none is applied again.
        assertEquals(expected.get("outputs"), facts.outputs);
        assertEquals("probabilities", facts.outputs);
        float[] scores = {0.7f, 0.2f, 0.1f};
        assertArrayEquals(scores, Postprocessor.probabilities(scores, facts), 0.0f);
    }

    @Test
    public void aModelWithoutFactsOrNotAModelIsRefusedClearly() throws IOException {
        try {
            TfliteMetadata.readFacts(ByteBuffer.wrap(Golden.bytes("no_metadata.tflite")));
            fail("a model without metadata was accepted");
        } catch (IllegalArgumentException e) {
            assertTrue(e.getMessage(), e.getMessage().contains("no keras_mobilevitv2 metadata"));
        }
        for (byte[] notAModel : new byte[][] {Golden.bytes("china.png"), new byte[3]}) {
            try {
                TfliteMetadata.readFacts(ByteBuffer.wrap(notAModel));
                fail("not a model, accepted");
            } catch (IllegalArgumentException e) {
                assertTrue(e.getMessage(), e.getMessage().contains("not a TFLite model"));
            }
        }
        byte[] truncated = Arrays.copyOf(Golden.bytes("model.tflite"), 4096);
        try {
            TfliteMetadata.readFacts(ByteBuffer.wrap(truncated));
            fail("a truncated model was accepted");
        } catch (IllegalArgumentException e) {
            assertTrue(e.getMessage(), e.getMessage().contains("truncated") || e.getMessage().contains("no "));
        }
    }

    @Test
    public void topKEqualsPythons() throws IOException {
        Map<String, Object> expected = Golden.json("outputs.json");
        ModelFacts facts = new ModelFacts(1, 1, 1.0f, "bicubic", 255.0f, Arrays.asList(), null, null, "logits");
        float[] probabilities = Postprocessor.probabilities(Golden.floats("logits.f32"), facts);
        List<Postprocessor.Prediction> top = Postprocessor.topK(probabilities, facts, 5);
        List<?> indices = (List<?>) expected.get("top5");
        List<?> scores = (List<?>) expected.get("top5_probabilities");
        for (int i = 0; i < 5; i++) {
            assertEquals(((Number) indices.get(i)).intValue(), top.get(i).index);
            assertEquals(((Number) scores.get(i)).doubleValue(), top.get(i).score, 1e-6);
            assertEquals(Integer.toString(top.get(i).index), top.get(i).name);
        }
    }

    @Test
    public void quantizedOutputsAreDequantizedAsPythonDoes() throws IOException {
        Map<String, Object> expected = Golden.json("outputs.json");
        float[] values = Postprocessor.dequantize(Golden.bytes("output.u8"),
                ((Number) expected.get("output_scale")).floatValue(),
                ((Number) expected.get("output_zero_point")).intValue(), false);
        List<?> dequantized = (List<?>) expected.get("dequantized");
        float[] wanted = new float[dequantized.size()];
        for (int i = 0; i < wanted.length; i++) {
            wanted[i] = ((Number) dequantized.get(i)).floatValue();
        }
        assertArrayEquals(wanted, values, 0.0f);
        ModelFacts facts = new ModelFacts(1, 1, 1.0f, "bicubic", 255.0f, Arrays.asList(), null, null);
        List<Postprocessor.Prediction> top = Postprocessor.topK(values, facts, 3);
        List<?> order = (List<?>) expected.get("dequantized_top3");
        for (int i = 0; i < 3; i++) {
            assertEquals(((Number) order.get(i)).intValue(), top.get(i).index);
        }
    }

    @Test
    public void latencyStatisticsEqualNumpys() throws IOException {
        Map<String, Object> expected = Golden.json("outputs.json");
        ByteBuffer buffer = Golden.littleEndian("latency.f64");
        LatencyStats stats = new LatencyStats(((Number) expected.get("latency_window")).intValue());
        while (buffer.remaining() >= 8) {
            stats.add(buffer.getDouble());
        }
        assertEquals(100, stats.size());
        assertEquals(((Number) expected.get("latency_average")).doubleValue(), stats.average(), 1e-9);
        assertEquals(((Number) expected.get("latency_p90")).doubleValue(), stats.percentile(90), 1e-9);
    }
}
