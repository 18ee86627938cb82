/*
 * The benchmark's peer for one transactional hop: Kafka Streams copying every record of one topic
 * to another under exactly_once_v2, one stream thread, ByteArray serdes, otherwise its defaults.
 *
 *   java -cp <libs>/*:<classes> StreamsRelay <bootstrap servers> <application id> <input topic> <output topic>
 *
 * Runs until SIGTERM, then closes (committing what it has handled).
 */
import java.time.Duration;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;

public final class StreamsRelay {
  public static void main(String[] args) throws InterruptedException {
    if (args.length != 4) {
      System.err.println("usage: StreamsRelay <bootstrap servers> <application id> <input topic> <output topic>");
      System.exit(2);
    }
    Properties props = new Properties();
    props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
    props.put(StreamsConfig.APPLICATION_ID_CONFIG, args[1]);
    props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
    props.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, 1);
    props.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.ByteArraySerde.class);
    props.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.ByteArraySerde.class);

    StreamsBuilder builder = new StreamsBuilder();
    builder.<byte[], byte[]>stream(args[2]).to(args[3]);

    KafkaStreams streams = new KafkaStreams(builder.build(), props);
    CountDownLatch closed = new CountDownLatch(1);
    Runtime.getRuntime().addShutdownHook(new Thread(() -> {
      streams.close(Duration.ofSeconds(30));
      closed.countDown();
    }));
    streams.setUncaughtExceptionHandler(err -> {
      err.printStackTrace();
      return org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
    });
    streams.start();
    closed.await();
  }
}
