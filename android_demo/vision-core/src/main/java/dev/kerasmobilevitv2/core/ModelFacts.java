package dev.kerasmobilevitv2.core;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;

/**
 * What a model converted by {@code mobilevitv2 convert} says about itself: its task, input size, how images
 * are resized and cropped, the input range, class names, what it outputs and how it was converted. Read from
 * the {@code keras_mobilevitv2} metadata entry of the .tflite file (see {@link TfliteMetadata}); nothing
 * here is typed twice.
 */
public final class ModelFacts {
    /** What a model does; files from before the kit recorded it are classifiers. */
    public enum Task {
        CLASSIFICATION, SEGMENTATION, DETECTION;

        static Task parse(String name) {
            for (Task task : values()) {
                if (task.name().equalsIgnoreCase(name)) {
                    return task;
                }
            }
            throw new IllegalArgumentException("metadata key 'task': '" + name + "' is not a task of this app "
                    + "(classification, segmentation or detection)");
        }
    }

    public final Task task;
    public final int inputHeight;
    public final int inputWidth;
    /** Centre crop: the image is resized to cover size / cropFraction, then the centre is cut out. */
    public final float cropFraction;
    /** "bicubic" or "bilinear". */
    public final String interpolation;
    /** The model takes RGB scaled to [0, inputMax]: 255 (it rescales inside) or 1. */
    public final float inputMax;
    public final List<String> classNames;
    public final String architecture;
    /** fp32, fp16, dynamic, int8 or int8-qat. */
    public final String precision;
    /**
     * What the file outputs: a classifier's "probabilities" or "logits" (files that do not say output logits);
     * a segmenter's "head-logits", "logits" or "mask"; a detector's "detections" or "raw".
     */
    public final String outputs;
    /** A detector's most detections per image (the size of its outputs); 0 for other tasks. */
    public final int maxDetections;

    public ModelFacts(int inputHeight, int inputWidth, float cropFraction, String interpolation, float inputMax,
                      List<String> classNames, String architecture, String precision) {
        this(inputHeight, inputWidth, cropFraction, interpolation, inputMax, classNames, architecture, precision,
                "logits");
    }

    public ModelFacts(int inputHeight, int inputWidth, float cropFraction, String interpolation, float inputMax,
                      List<String> classNames, String architecture, String precision, String outputs) {
        this(Task.CLASSIFICATION, inputHeight, inputWidth, cropFraction, interpolation, inputMax, classNames,
                architecture, precision, outputs, 0);
    }

    public ModelFacts(Task task, int inputHeight, int inputWidth, float cropFraction, String interpolation,
                      float inputMax, List<String> classNames, String architecture, String precision, String outputs,
                      int maxDetections) {
        if (inputHeight < 1 || inputWidth < 1) {
            throw new IllegalArgumentException("input size must be positive, got " + inputHeight + "x" + inputWidth);
        }
        if (!(cropFraction > 0 && cropFraction <= 1)) {
            throw new IllegalArgumentException("crop_fraction must be in (0, 1], got " + cropFraction);
        }
        if (!Resize.isSupported(interpolation)) {
            throw new IllegalArgumentException("interpolation '" + interpolation + "' is not supported here "
                    + "(bicubic or bilinear)");
        }
        if (task == Task.DETECTION && "detections".equals(outputs) && maxDetections < 1) {
            throw new IllegalArgumentException("metadata key 'postprocessing': a detector's max_detections must be "
                    + "positive, got " + maxDetections);
        }
        this.task = task;
        this.maxDetections = maxDetections;
        this.inputHeight = inputHeight;
        this.inputWidth = inputWidth;
        this.cropFraction = cropFraction;
        this.interpolation = interpolation;
        this.inputMax = inputMax;
        this.classNames = Collections.unmodifiableList(new ArrayList<>(classNames));
        this.architecture = architecture;
        this.precision = precision;
        this.outputs = outputs;
    }

    /** True when the output is logits, so that probabilities need a softmax. */
    public boolean outputsLogits() {
        return !"probabilities".equals(outputs);
    }

    /** The facts from the metadata JSON; a missing or mistyped key is an error that names it. */
    public static ModelFacts fromJson(String json) {
        Object parsed = Json.parse(json);
        if (!(parsed instanceof Map)) {
            throw new IllegalArgumentException("metadata JSON: expected an object");
        }
        @SuppressWarnings("unchecked")
        Map<String, Object> facts = (Map<String, Object>) parsed;
        List<?> size = get(facts, "input_size", List.class);
        if (size.size() != 2) {
            throw new IllegalArgumentException("metadata key 'input_size': expected [height, width], got " + size);
        }
        List<String> names = new ArrayList<>();
        Object rawNames = facts.get("class_names");
        if (rawNames instanceof List) {
            for (Object name : (List<?>) rawNames) {
                names.add(String.valueOf(name));
            }
        }
        Object architecture = facts.get("architecture");
        Object precision = facts.get("precision");
        Object interpolation = facts.get("interpolation");
        Object outputs = facts.get("outputs");
        Object task = facts.get("task");
        int maxDetections = 0;
        if (facts.get("postprocessing") instanceof Map) {
            Object max = ((Map<?, ?>) facts.get("postprocessing")).get("max_detections");
            if (!(max instanceof Number)) {
                throw new IllegalArgumentException("metadata key 'postprocessing': no number 'max_detections'");
            }
            maxDetections = ((Number) max).intValue();
        }
        return new ModelFacts(task == null ? Task.CLASSIFICATION : Task.parse(task.toString()),
                ((Number) size.get(0)).intValue(), ((Number) size.get(1)).intValue(),
                get(facts, "crop_fraction", Number.class).floatValue(),
                interpolation == null ? "bicubic" : interpolation.toString(),
                get(facts, "input_max", Number.class).floatValue(), names,
                architecture == null ? null : architecture.toString(), precision == null ? null : precision.toString(),
                outputs == null ? "logits" : outputs.toString(), maxDetections);
    }

    private static <T> T get(Map<String, Object> facts, String key, Class<T> type) {
        Object value = facts.get(key);
        if (value == null) {
            throw new IllegalArgumentException("metadata: missing key '" + key + "'");
        }
        if (!type.isInstance(value)) {
            throw new IllegalArgumentException("metadata key '" + key + "': expected " + type.getSimpleName()
                    + ", got " + value);
        }
        return type.cast(value);
    }

    /** The name of class {@code index}, or its number when the model carries no names. */
    public String className(int index) {
        return index < classNames.size() ? classNames.get(index) : Integer.toString(index);
    }
}
