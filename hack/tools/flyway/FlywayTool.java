// A minimal Flyway command line for the migration step's tests (Flyway's own CLI is not on Maven Central):
//   java FlywayTool migrate|validate|info DIR [TARGET]   with FLYWAY_URL, FLYWAY_USER and FLYWAY_PASSWORD set.
import org.flywaydb.core.Flyway;
import org.flywaydb.core.api.MigrationInfo;
import org.flywaydb.core.api.configuration.FluentConfiguration;

public final class FlywayTool {
    public static void main(String[] args) {
        FluentConfiguration config = Flyway.configure()
            .dataSource(System.getenv("FLYWAY_URL"), System.getenv("FLYWAY_USER"), System.getenv("FLYWAY_PASSWORD"))
            .locations("filesystem:" + args[1]);
        if (args.length > 2) {
            config = config.target(args[2]);
        }
        Flyway flyway = config.load();
        switch (args[0]) {
            case "migrate" -> System.out.println("applied " + flyway.migrate().migrationsExecuted);
            case "validate" -> flyway.validate();
            case "info" -> {
                for (MigrationInfo info : flyway.info().all()) {
                    System.out.println(info.getVersion() + " " + info.getScript() + " " + info.getState());
                }
            }
            default -> throw new IllegalArgumentException("unknown command " + args[0]);
        }
    }
}
