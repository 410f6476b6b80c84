package dev.kerasmobilevitv2.core;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;

/**
 * Reads a named metadata entry of a .tflite file: the flatbuffer's {@code Model.metadata} list names a
 * buffer whose bytes are the entry. {@code mobilevitv2 convert} stores the model's facts under
 * {@link #ENTRY} as UTF-8 JSON. Only the few tables needed are walked, so no flatbuffers library or
 * generated schema code is required.
 */
public final class TfliteMetadata {
    public static final String ENTRY = "keras_mobilevitv2";

    // Field numbers in TFLite's schema (schema.fbs).
    private static final int MODEL_BUFFERS = 4;
    private static final int MODEL_METADATA = 6;
    private static final int METADATA_NAME = 0;
    private static final int METADATA_BUFFER = 1;
    private static final int BUFFER_DATA = 0;
    private static final int BUFFER_OFFSET = 1;
    private static final int BUFFER_SIZE = 2;

    private TfliteMetadata() {
    }

    /** The model's facts; an error that says what to do when the file has none. */
    public static ModelFacts readFacts(ByteBuffer model) {
        String json = readEntry(model, ENTRY);
        if (json == null) {
            throw new IllegalArgumentException("the model has no " + ENTRY + " metadata: convert it with "
                    + "`mobilevitv2 convert`, which stores its input size, preprocessing and class names");
        }
        return ModelFacts.fromJson(json);
    }

    /** The text of metadata entry {@code name}, or null when the file has no such entry. */
    public static String readEntry(ByteBuffer model, String name) {
        ByteBuffer buffer = model.duplicate().order(ByteOrder.LITTLE_ENDIAN);
        int base = buffer.position();
        if (buffer.remaining() < 8 || buffer.get(base + 4) != 'T' || buffer.get(base + 5) != 'F'
                || buffer.get(base + 6) != 'L' || buffer.get(base + 7) != '3') {
            throw new IllegalArgumentException("not a TFLite model (no TFL3 identifier)");
        }
        try {
            int root = base + buffer.getInt(base);
            int metadata = vector(buffer, root, MODEL_METADATA);
            int buffers = vector(buffer, root, MODEL_BUFFERS);
            if (metadata < 0 || buffers < 0) {
                return null;
            }
            for (int i = 0; i < buffer.getInt(metadata); i++) {
                int entry = indirect(buffer, metadata + 4 + 4 * i);
                int nameField = field(buffer, entry, METADATA_NAME);
                if (nameField < 0 || !name.equals(string(buffer, indirect(buffer, nameField)))) {
                    continue;
                }
                int indexField = field(buffer, entry, METADATA_BUFFER);
                int index = indexField < 0 ? 0 : buffer.getInt(indexField);
                if (index < 0 || index >= buffer.getInt(buffers)) {
                    throw new IllegalArgumentException("metadata '" + name + "' names buffer " + index
                            + ", which the file does not have");
                }
                return new String(bufferBytes(buffer, base, indirect(buffer, buffers + 4 + 4 * index)),
                        StandardCharsets.UTF_8);
            }
            return null;
        } catch (IndexOutOfBoundsException e) {
            throw new IllegalArgumentException("not a TFLite model: the file is truncated or damaged", e);
        }
    }

    /** Position of field {@code index} of the table at {@code table}, or -1 when it is absent. */
    private static int field(ByteBuffer b, int table, int index) {
        int vtable = table - b.getInt(table);
        int vtableSize = b.getShort(vtable) & 0xffff;
        int slot = 4 + 2 * index;
        if (slot >= vtableSize) {
            return -1;
        }
        int offset = b.getShort(vtable + slot) & 0xffff;
        return offset == 0 ? -1 : table + offset;
    }

    private static int indirect(ByteBuffer b, int position) {
        return position + b.getInt(position);
    }

    /** The position of a vector field's length word, or -1. */
    private static int vector(ByteBuffer b, int table, int index) {
        int position = field(b, table, index);
        return position < 0 ? -1 : indirect(b, position);
    }

    private static String string(ByteBuffer b, int position) {
        byte[] bytes = new byte[b.getInt(position)];
        for (int i = 0; i < bytes.length; i++) {
            bytes[i] = b.get(position + 4 + i);
        }
        return new String(bytes, StandardCharsets.UTF_8);
    }

    /** A buffer's bytes: inline data, or (files over 2 GB) a range of the file given by offset and size. */
    private static byte[] bufferBytes(ByteBuffer b, int base, int table) {
        int data = field(b, table, BUFFER_DATA);
        int start;
        long length;
        if (data >= 0) {
            start = indirect(b, data) + 4;
            length = b.getInt(indirect(b, data));
        } else {
            int offset = field(b, table, BUFFER_OFFSET);
            int size = field(b, table, BUFFER_SIZE);
            if (offset < 0 || size < 0) {
                return new byte[0];
            }
            start = base + (int) b.getLong(offset);
            length = b.getLong(size);
        }
        byte[] bytes = new byte[(int) length];
        for (int i = 0; i < bytes.length; i++) {
            bytes[i] = b.get(start + i);
        }
        return bytes;
    }
}
