// One JVM for the local stack's Pinot: an embedded ZooKeeper plus controller, broker and server.
//
// Pinot's own commands cannot do this without losing data: `QuickStart` wipes its directories and
// `StartServiceManager` expects an external ZooKeeper. This launcher starts ZooKeeper from a zoo.cfg
// (loopback only, data kept on disk), waits for it, then starts the Pinot roles from properties files
// through Pinot's PinotServiceManager. On SIGTERM it stops server, broker, controller, then ZooKeeper.
//
// Usage: java -cp 'lib/*:<dir of this class>' PinotLauncher <zoo.cfg | -> <zkAddress> <cluster> <role.properties>...
// Each properties file names its role in `pinot.service.role` (CONTROLLER, BROKER or SERVER).
import java.io.File;
import java.io.FileReader;
import java.io.IOException;
import java.io.Reader;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CompletableFuture;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;
import org.apache.pinot.spi.plugin.PluginManager;
import org.apache.pinot.spi.services.ServiceRole;
import org.apache.pinot.tools.service.PinotServiceManager;
import org.apache.zookeeper.server.PurgeTxnLog;
import org.apache.zookeeper.server.ServerConfig;
import org.apache.zookeeper.server.ZooKeeperServerMain;

public final class PinotLauncher {
  private static final Logger LOG = LogManager.getLogger(PinotLauncher.class);

  /** Exposes ZooKeeperServerMain's protected shutdown. */
  private static final class ZooKeeper extends ZooKeeperServerMain {
    void stop() {
      shutdown();
    }
  }

  public static void main(String[] args) throws Exception {
    if (args.length < 4) {
      System.err.println("usage: PinotLauncher <zoo.cfg> <zkAddress> <cluster> <role.properties>...");
      System.exit(2);
    }
    String zooCfg = args[0];
    String zkAddress = args[1];
    String cluster = args[2];

    // "-" instead of a zoo.cfg: ZooKeeper runs elsewhere (a local cluster's extra server JVMs).
    ZooKeeper zk = zooCfg.equals("-") ? null : new ZooKeeper();
    if (zk != null) {
      ServerConfig zkConfig = new ServerConfig();
      zkConfig.parse(zooCfg);
      // Standalone ZooKeeper never purges old snapshots and logs by itself; keep the newest three.
      File zkData = zkConfig.getDataDir();
      if (zkData.isDirectory()) PurgeTxnLog.purge(zkConfig.getDataLogDir(), zkData, 3);
      Thread zkThread = new Thread(() -> {
        try {
          zk.runFromConfig(zkConfig);
        } catch (Exception e) {
          LOG.error("ZooKeeper failed", e);
          System.exit(1);
        }
      }, "zookeeper");
      zkThread.start();
      waitForPort(zkConfig.getClientPortAddress(), 60_000);
      LOG.info("ZooKeeper is up at {}", zkAddress);
    }

    PluginManager.get().init();
    PinotServiceManager manager = new PinotServiceManager(zkAddress, cluster, "localhost", -1);
    manager.start();

    List<String> started = new ArrayList<>();
    Runtime.getRuntime().addShutdownHook(new Thread(() -> {
      LOG.info("Stopping Pinot ...");
      for (int i = started.size() - 1; i >= 0; i--) {
        try {
          manager.stopPinotInstanceById(started.get(i));
        } catch (RuntimeException e) {
          LOG.warn("Could not stop {} cleanly", started.get(i), e);
        }
      }
      if (zk != null) zk.stop();
      LOG.info("Pinot stopped");
      LogManager.shutdown();
    }, "pinot-launcher-shutdown"));

    try {
      // The controller sets up the Helix cluster, so it comes first; the others then start together.
      List<Map<String, Object>> others = new ArrayList<>();
      for (int i = 3; i < args.length; i++) {
        Map<String, Object> props = readProperties(args[i]);
        if (role(props) == ServiceRole.CONTROLLER) {
          started.add(manager.startRole(ServiceRole.CONTROLLER, props));
        } else {
          others.add(props);
        }
      }
      List<CompletableFuture<String>> futures = new ArrayList<>();
      for (Map<String, Object> props : others) {
        futures.add(CompletableFuture.supplyAsync(() -> {
          try {
            return manager.startRole(role(props), props);
          } catch (Exception e) {
            throw new IllegalStateException("could not start Pinot " + role(props), e);
          }
        }));
      }
      for (CompletableFuture<String> f : futures) started.add(f.join());
      LOG.info("Pinot is up: {}", started);
    } catch (Exception e) {
      LOG.error("Pinot failed to start", e);
      System.exit(1);
    }
  }

  private static ServiceRole role(Map<String, Object> props) {
    return ServiceRole.valueOf(String.valueOf(props.get("pinot.service.role")));
  }

  private static Map<String, Object> readProperties(String path) throws IOException {
    Properties p = new Properties();
    try (Reader r = new FileReader(path)) {
      p.load(r);
    }
    Map<String, Object> map = new HashMap<>();
    for (String name : p.stringPropertyNames()) map.put(name, p.getProperty(name));
    if (!map.containsKey("pinot.service.role")) throw new IOException(path + ": pinot.service.role is missing");
    return map;
  }

  private static void waitForPort(InetSocketAddress address, long timeoutMs) throws InterruptedException {
    long deadline = System.currentTimeMillis() + timeoutMs;
    InetSocketAddress target = new InetSocketAddress("127.0.0.1", address.getPort());
    while (System.currentTimeMillis() < deadline) {
      try (Socket s = new Socket()) {
        s.connect(target, 1000);
        return;
      } catch (IOException e) {
        Thread.sleep(200);
      }
    }
    throw new IllegalStateException("ZooKeeper did not open " + target + " within " + timeoutMs + " ms");
  }

  private PinotLauncher() {}
}
