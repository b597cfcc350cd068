// A downstream consumer of the Haltless topics with Apache Avro for Java: a BinaryMessageDecoder per topic
// (reading with the topic's current schema) and a SchemaStore holding every schema of schemas/avro, so each
// message's writer schema is found by the fingerprint in its single-object header. Input lines:
// "<topic> <payload in hex>"; output: one JSON line per message. Argument: the schemas/avro folder.
// Run with the source launcher: java -cp 'avro jars/*' AvroDecode.java schemas/avro

import java.io.BufferedReader;
import java.io.File;
import java.io.InputStreamReader;
import java.math.BigDecimal;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.message.BinaryMessageDecoder;
import org.apache.avro.message.SchemaStore;

public class AvroDecode {
  public static void main(String[] args) throws Exception {
    Path folder = Path.of(args[0]);
    SchemaStore.Cache store = new SchemaStore.Cache();
    try (Stream<Path> files = Files.walk(folder)) {
      for (Path p : (Iterable<Path>) files.filter(f -> f.toString().endsWith(".avsc"))::iterator) {
        store.addSchema(new Schema.Parser().parse(p.toFile()));
      }
    }
    Map<String, BinaryMessageDecoder<GenericRecord>> decoders = new HashMap<>();
    BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
    for (String line; (line = in.readLine()) != null; ) {
      String[] parts = line.trim().split(" ");
      BinaryMessageDecoder<GenericRecord> decoder = decoders.get(parts[0]);
      if (decoder == null) {
        Schema reader = new Schema.Parser().parse(new File(folder.toFile(), parts[0] + ".avsc"));
        decoder = new BinaryMessageDecoder<>(GenericData.get(), reader, store);
        decoders.put(parts[0], decoder);
      }
      StringBuilder out = new StringBuilder();
      json(decoder.decode(hex(parts[1])), out);
      System.out.println(out);
    }
  }

  static byte[] hex(String s) {
    byte[] b = new byte[s.length() / 2];
    for (int i = 0; i < b.length; i++) b[i] = (byte) Integer.parseInt(s.substring(2 * i, 2 * i + 2), 16);
    return b;
  }

  /** The JSON shape shared with the Rust and Python sides of the test. */
  static void json(Object v, StringBuilder out) {
    if (v == null) {
      out.append("null");
    } else if (v instanceof GenericRecord r) {
      out.append('{');
      for (Schema.Field f : r.getSchema().getFields()) {
        if (f.pos() > 0) out.append(',');
        string(f.name(), out);
        out.append(':');
        json(r.get(f.pos()), out);
      }
      out.append('}');
    } else if (v instanceof Map<?, ?> m) {
      out.append('{');
      boolean first = true;
      for (Map.Entry<?, ?> e : m.entrySet()) {
        if (!first) out.append(',');
        first = false;
        string(e.getKey().toString(), out);
        out.append(':');
        json(e.getValue(), out);
      }
      out.append('}');
    } else if (v instanceof List<?> l) {
      out.append('[');
      for (int i = 0; i < l.size(); i++) {
        if (i > 0) out.append(',');
        json(l.get(i), out);
      }
      out.append(']');
    } else if (v instanceof Double || v instanceof Float) {
      double d = ((Number) v).doubleValue();
      // The exact decimal value of the double: Double.toString of Java 17 is not always the closest.
      if (Double.isFinite(d)) out.append(new BigDecimal(d).toString());
      else string(Double.toString(d), out);
    } else if (v instanceof Number || v instanceof Boolean) {
      out.append(v);
    } else {
      string(v.toString(), out); // strings (uuids among them) and enum symbols
    }
  }

  static void string(String s, StringBuilder out) {
    out.append('"');
    for (char c : s.toCharArray()) {
      if (c == '"' || c == '\\') out.append('\\').append(c);
      else if (c < 0x20) out.append(String.format("\\u%04x", (int) c));
      else out.append(c);
    }
    out.append('"');
  }
}
