package dev.kerasmobilevitv2.core;

import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import javax.imageio.ImageIO;

/** The golden data that make_golden.py writes with the Python pipeline (its folder is the golden.dir property). */
final class Golden {
    static final Path DIR = Paths.get(System.getProperty("golden.dir", "build/golden"));

    private Golden() {
    }

    static byte[] bytes(String name) throws IOException {
        return Files.readAllBytes(DIR.resolve(name));
    }

    static ByteBuffer littleEndian(String name) throws IOException {
        return ByteBuffer.wrap(bytes(name)).order(ByteOrder.LITTLE_ENDIAN);
    }

    static float[] floats(String name) throws IOException {
        ByteBuffer buffer = littleEndian(name);
        float[] out = new float[buffer.remaining() / 4];
        buffer.asFloatBuffer().get(out);
        return out;
    }

    static int[] ints(String name) throws IOException {
        ByteBuffer buffer = littleEndian(name);
        int[] out = new int[buffer.remaining() / 4];
        buffer.asIntBuffer().get(out);
        return out;
    }

    @SuppressWarnings("unchecked")
    static <T> T json(String name) throws IOException {
        return (T) Json.parse(new String(bytes(name), StandardCharsets.UTF_8));
    }

    static BufferedImage image(String name) throws IOException {
        return ImageIO.read(DIR.resolve(name).toFile());
    }

    /** An image file's pixels as a {@link Frame} (ARGB, row by row). */
    static Frame frame(String name) throws IOException {
        BufferedImage image = image(name);
        int width = image.getWidth();
        int height = image.getHeight();
        return new Frame(image.getRGB(0, 0, width, height, null, 0, width), width, height);
    }

    static float number(Object value) {
        return ((Number) value).floatValue();
    }
}
