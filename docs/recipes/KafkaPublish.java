// Publishes one message into a Gatehouse channel on Kafka, with Kafka's own Java client
// (docs/backbones.md, "Publishing from outside (Kafka)"). Run it as a single source file:
//
//   java -cp '<kafka libs>/*' docs/recipes/KafkaPublish.java <brokers> <topic> <channel> <data JSON>
//
// The record key is the channel, so the client's default partitioner (murmur2, the same as the
// gateways') puts it in the channel's partition. The value is the envelope without a position:
// Kafka assigns it. Prints the partition and the Gatehouse offset (the partition offset + 1).
import java.util.Properties;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.serialization.StringSerializer;

public class KafkaPublish {
  public static void main(String[] args) throws Exception {
    if (args.length != 4) {
      System.err.println("usage: KafkaPublish <brokers> <topic> <channel> <data JSON>");
      System.exit(2);
    }
    String brokers = args[0], topic = args[1], channel = args[2], data = args[3];
    Properties props = new Properties();
    props.put("bootstrap.servers", brokers);
    props.put("acks", "all");
    // A topic that does not exist (no gateway created it) fails after 10 s instead of 60.
    props.put("max.block.ms", "10000");
    props.put("enable.idempotence", "true");
    props.put("key.serializer", StringSerializer.class.getName());
    props.put("value.serializer", StringSerializer.class.getName());
    // Channel names hold only A-Z a-z 0-9 _ - . : @ = / +, none of which JSON escapes.
    String value = "{\"v\":1,\"channel\":\"" + channel + "\",\"ts\":" + System.currentTimeMillis() + ",\"data\":" + data + "}";
    try (KafkaProducer<String, String> producer = new KafkaProducer<>(props)) {
      RecordMetadata m = producer.send(new ProducerRecord<>(topic, channel, value)).get();
      System.out.println(m.partition() + " " + (m.offset() + 1));
    }
  }
}
