// Plain Java, no Android: everything the app does that is logic, not UI. Its tests compare it with the
// Python pipeline; make their golden data first:
//   python vision-core/src/test/make_golden.py vision-core/build/golden
plugins {
    `java-library`
}

java {
    sourceCompatibility = JavaVersion.VERSION_11
    targetCompatibility = JavaVersion.VERSION_11
}

dependencies {
    testImplementation("junit:junit:4.13.2")
}

tasks.test {
    systemProperty("golden.dir", layout.buildDirectory.dir("golden").get().asFile.absolutePath)
    systemProperty("java.awt.headless", "true")
}
