// The workload of bench/jvm_nonheap.sh: loads CLASSES classes of the JDK's own modules (as a
// framework's class path scan would), asks each for its methods (reflection, as dependency
// injection does), compiles SOURCE with the JDK's own compiler ROUNDS times in this JVM (a
// large real program, so the JIT fills the code cache as a warmed-up service's), starts
// THREADS threads that each do some library work (a regex, a format, a stream, a BigInteger)
// and then wait, and exits while they wait, so that -XX:+PrintNMTStatistics reports their
// stacks. Prints the process's VmRSS and VmHWM last.
//
//   java -XX:NativeMemoryTracking=summary -XX:+UnlockDiagnosticVMOptions \
//        -XX:+PrintNMTStatistics -cp . NonHeap THREADS CLASSES ROUNDS SOURCE

import java.math.BigInteger;
import java.net.URI;
import java.nio.file.FileSystem;
import java.nio.file.FileSystems;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import java.util.stream.IntStream;
import java.util.stream.Stream;
import javax.tools.JavaCompiler;
import javax.tools.ToolProvider;

public class NonHeap {
    public static void main(String[] args) throws Exception {
        int threads = Integer.parseInt(args[0]);
        int classes = Integer.parseInt(args[1]);
        int rounds = Integer.parseInt(args[2]);
        int loaded = loadClasses(classes);
        compile(rounds, args.length > 3 ? args[3] : null);
        CountDownLatch started = new CountDownLatch(threads);
        CountDownLatch never = new CountDownLatch(1);
        for (int i = 0; i < threads; i++) {
            final int n = i;
            Thread t = new Thread(() -> {
                work(n);
                started.countDown();
                try {
                    never.await();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }, "worker-" + i);
            t.setDaemon(true);
            t.start();
        }
        started.await();
        System.out.println("loaded_classes " + loaded);
        System.out.println("threads " + threads);
        for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
            if (line.startsWith("VmRSS") || line.startsWith("VmHWM")) {
                System.out.println(line.replaceAll("\\s+", " "));
            }
        }
    }

    /** Compiles `source` into a temporary directory `rounds` times with javac, in this JVM. */
    static void compile(int rounds, String source) throws Exception {
        if (rounds == 0) {
            return;
        }
        JavaCompiler javac = ToolProvider.getSystemJavaCompiler();
        Path out = Files.createTempDirectory("nonheap");
        try {
            for (int i = 0; i < rounds; i++) {
                int status = javac.run(null, null, null, "-d", out.toString(), source);
                if (status != 0) {
                    throw new IllegalStateException("javac failed: " + status);
                }
            }
        } finally {
            try (Stream<Path> files = Files.walk(out)) {
                files.sorted(Comparator.reverseOrder()).forEach(f -> f.toFile().delete());
            }
        }
    }

    /** Some work from the class library, so the thread's stack is used as a server's is. */
    static void work(int n) {
        Pattern p = Pattern.compile("(\\w+)@(\\w+)\\.com");
        String s = String.format("user%d@example.com %s", n, Pattern.matches("\\d+", "" + n));
        String joined = IntStream.range(0, 200)
                .mapToObj(i -> p.matcher(s).replaceAll("$2/$1") + i)
                .collect(Collectors.joining(","));
        BigInteger f = BigInteger.ONE;
        for (int i = 2; i < 200; i++) {
            f = f.multiply(BigInteger.valueOf(i));
        }
        if (joined.length() + f.bitLength() == 0) {
            System.out.println();
        }
    }

    /** Loads (without initialising) up to `wanted` classes of the JDK's modules, in order. */
    static int loadClasses(int wanted) throws Exception {
        if (wanted == 0) {
            return 0;
        }
        FileSystem jrt = FileSystems.getFileSystem(URI.create("jrt:/"));
        List<String> names = new ArrayList<>();
        try (Stream<Path> walk = Files.walk(jrt.getPath("/modules"))) {
            walk.map(Path::toString)
                    .filter(f -> f.endsWith(".class") && !f.endsWith("module-info.class"))
                    .map(f -> f.substring(f.indexOf('/', "/modules/".length()) + 1))
                    .map(f -> f.substring(0, f.length() - ".class".length()).replace('/', '.'))
                    .forEach(names::add);
        }
        int loaded = 0;
        ClassLoader loader = ClassLoader.getSystemClassLoader();
        for (String name : names) {
            if (loaded >= wanted) {
                break;
            }
            try {
                Class<?> c = Class.forName(name, false, loader);
                c.getDeclaredMethods();
                loaded++;
            } catch (Throwable e) {
                // Classes of modules not resolved at boot, or whose dependencies are missing.
            }
        }
        return loaded;
    }
}
